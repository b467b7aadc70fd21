//! `make stress`: concurrent POST/GET/PUT/DELETE on shared carts and
//! customers through two market replicas on one store, for a bounded time,
//! then a check that no acknowledged write was lost (the claim of the
//! tor-async-couchdb retry sample, `../shared/seeds/000_…`, measured).
//!
//! * [`workload`]: the workers and what they record.
//! * [`verify`]: the lost-update check against the store's history.
//! * [`faults`]: the same load while the store fails under it (a full
//!   disk, PostgreSQL stopped, a replica killed), judged the same way.

pub mod faults;
pub mod verify;
pub mod workload;

use crate::topology::binary;
use beacon_kit::process::Service;
use beacon_market::store::{Deadlines, Store};
use http::StatusCode;
use std::{collections::BTreeMap, os::unix::fs::PermissionsExt, process::Command, time::Duration};
use tokio::time::Instant;
use verify::Verdict;
use workload::{customer_id, Op, Seen, Worker};

/// How hard and how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the load lasts.
    pub duration: Duration,
    /// Concurrent workers.
    pub workers: usize,
    /// Shared carts.
    pub carts: usize,
    /// Shared customers.
    pub customers: usize,
    /// Seed of the workers' random choices.
    pub seed: u64,
}

/// Which store the markets share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file.
    Sqlite,
    /// A throwaway PostgreSQL server.
    Postgres,
}

impl Db {
    /// As printed.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// Answers to one kind of request.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Requests sent.
    pub sent: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 4xx answers (expected: adding what is in the cart, conflicts...).
    pub refused: u64,
    /// 5xx answers (must be none).
    pub server_errors: u64,
    /// No answer within 10 s, or the connection failed.
    pub failed: u64,
}

/// What a run did and found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The store.
    pub db: Db,
    /// How long the load lasted.
    pub took: Duration,
    /// Answers by request kind.
    pub tallies: BTreeMap<Op, Tally>,
    /// Compare-and-sets lost and retried inside the markets.
    pub retries: f64,
    /// Stale saves merged inside the markets.
    pub merges: f64,
    /// Conflicts answered (409 with the three versions).
    pub conflicts: u64,
    /// Checkouts refused as based on a stale cart.
    pub stale_checkouts: u64,
    /// The lost-update check.
    pub verdict: Verdict,
    /// Cart writes (adds and removes answered), p50 and p99.
    pub cart_write_ms: (f64, f64),
}

impl Report {
    /// All requests.
    pub fn total(&self) -> Tally {
        self.tallies.values().fold(Tally::default(), |a, t| Tally {
            sent: a.sent + t.sent,
            ok: a.ok + t.ok,
            refused: a.refused + t.refused,
            server_errors: a.server_errors + t.server_errors,
            failed: a.failed + t.failed,
        })
    }

    /// No 5xx, no failures, nothing lost.
    pub fn passed(&self) -> bool {
        let total = self.total();
        total.server_errors == 0 && total.failed == 0 && self.verdict.lost.is_empty()
    }
}

/// The secret the stress markets sign with.
const SECRET: &str = "stress test secret, not for real data";

/// Runs the stress load on `db` as `options` say.
pub async fn run(db: Db, options: &Options) -> Result<Report, String> {
    let dir = tempdir()?;
    let url = match db {
        Db::Sqlite => format!("sqlite:{dir}/market.db"),
        Db::Postgres => postgres("start", &dir, None)?,
    };
    let outcome = load(db, &url, options).await;
    if db == Db::Postgres {
        let _ = postgres("stop", &dir, None);
    }
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn load(db: Db, url: &str, options: &Options) -> Result<Report, String> {
    let registry = start_registry()?;
    let mut markets = Vec::new();
    for _ in 0..2 {
        markets.push(start_market(&registry, url, "127.0.0.1:0")?);
    }
    let urls: Vec<String> = markets.iter().map(|m| m.url.clone()).collect();
    let http = beacon::net::http::http_client(Duration::from_secs(1));
    create_customers(&http, &urls[0], options.customers).await?;

    let started = Instant::now();
    let workers = spawn_workers(&urls, options, &http, started + options.duration);
    let seen = gather(workers).await?;
    let took = started.elapsed();

    let mut retries = 0.0;
    let mut merges = 0.0;
    for market in &urls {
        let text = get_text(&http, &format!("{market}/_metrics")).await?;
        retries += counter(&text, "beacon_market_store_retries_total");
        merges += counter(&text, "beacon_market_store_merges_total");
    }
    for market in markets {
        market.stop()?;
    }
    drop(registry);

    let verdict = verify_store(url, &seen, options.carts, options.customers).await?;
    Ok(summarize(db, took, &seen, retries, merges, verdict))
}

/// A registry for the markets to register with (they need one to start).
fn start_registry() -> Result<Service, String> {
    Service::start_with_log(
        &binary("beacon-registry"),
        &["--listen", "127.0.0.1:0"],
        "warn,beacon_registry::server=info",
    )
}

/// A market replica on the store at `db`, serving on `listen`.
fn start_market(registry: &Service, db: &str, listen: &str) -> Result<Service, String> {
    let args = [
        "--listen",
        listen,
        "--registry",
        &registry.url,
        "--db",
        db,
        "--secret",
        SECRET,
        // Every version kept, so that every acknowledgement can be checked.
        "--history-versions",
        "1000000000",
    ];
    Service::start_with_log(
        &binary("beacon-market"),
        &args,
        "warn,beacon_market::server=info",
    )
}

/// `options.workers` workers on `markets` until `until`.
fn spawn_workers(
    markets: &[String],
    options: &Options,
    http: &beacon::net::http::HttpClient,
    until: Instant,
) -> Vec<tokio::task::JoinHandle<Seen>> {
    (0..options.workers)
        .map(|id| {
            let worker = Worker {
                id,
                markets: markets.to_vec(),
                carts: options.carts,
                customers: options.customers,
                http: http.clone(),
            };
            tokio::spawn(worker.run(until, options.seed.wrapping_add(id as u64)))
        })
        .collect()
}

/// Everything the workers saw, once they are done.
async fn gather(workers: Vec<tokio::task::JoinHandle<Seen>>) -> Result<Seen, String> {
    let mut seen = Seen::default();
    for worker in workers {
        let mut one = worker.await.map_err(|e| format!("a worker failed: {e}"))?;
        seen.answers.append(&mut one.answers);
        seen.carts.append(&mut one.carts);
        seen.customers.append(&mut one.customers);
    }
    Ok(seen)
}

/// Opens the store at `url` after the markets are gone and checks what
/// they acknowledged against its history.
async fn verify_store(
    url: &str,
    seen: &Seen,
    carts: usize,
    customers: usize,
) -> Result<Verdict, String> {
    // The whole history of a busy cart is read at once: no page deadline.
    let patient = Deadlines {
        read: Duration::from_secs(60),
        write: Duration::from_secs(60),
    };
    let store = Store::open(url, SECRET.as_bytes())
        .await
        .map_err(|e| e.to_string())?
        .within(patient);
    let verdict = verify::verify(&store, &seen.carts, &seen.customers, carts, customers).await;
    store.close().await;
    verdict
}

fn summarize(
    db: Db,
    took: Duration,
    seen: &Seen,
    retries: f64,
    merges: f64,
    verdict: Verdict,
) -> Report {
    let mut tallies: BTreeMap<Op, Tally> = BTreeMap::new();
    let mut cart_writes = Vec::new();
    let (mut conflicts, mut stale_checkouts) = (0, 0);
    for answer in &seen.answers {
        let tally = tallies.entry(answer.op).or_default();
        tally.sent += 1;
        match answer.status {
            None => tally.failed += 1,
            Some(s) if s.is_success() => tally.ok += 1,
            Some(s) if s.is_server_error() => tally.server_errors += 1,
            Some(s) => {
                tally.refused += 1;
                if s == StatusCode::CONFLICT {
                    match answer.op {
                        Op::CustomerPut => conflicts += 1,
                        Op::Checkout => stale_checkouts += 1,
                        _ => {}
                    }
                }
            }
        }
        if matches!(answer.op, Op::CartAdd | Op::CartRemove) && answer.status.is_some() {
            cart_writes.push(answer.took.as_secs_f64() * 1000.0);
        }
    }
    cart_writes.sort_by(f64::total_cmp);
    let at = |q: f64| {
        cart_writes
            .get(((cart_writes.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Report {
        db,
        took,
        tallies,
        retries,
        merges,
        conflicts,
        stale_checkouts,
        verdict,
        cart_write_ms: (at(0.5), at(0.99)),
    }
}

async fn create_customers(
    http: &beacon::net::http::HttpClient,
    market: &str,
    customers: usize,
) -> Result<(), String> {
    for customer in 0..customers {
        let body = serde_json::json!({"name": "Stress", "email": "stress@example.org", "address": "1 Load Lane"});
        let request =
            http::Request::put(format!("{market}/api/customers/{}", customer_id(customer)))
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(
                    http::header::COOKIE,
                    format!(
                        "{}={}",
                        beacon_market::session::COOKIE,
                        workload::CUSTOMERS_COOKIE
                    ),
                )
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    body.to_string(),
                )))
                .map_err(|e| e.to_string())?;
        let response = http.request(request).await.map_err(|e| e.to_string())?;
        if response.status() != StatusCode::CREATED {
            return Err(format!(
                "creating customer {customer}: {}",
                response.status()
            ));
        }
    }
    Ok(())
}

async fn get_text(http: &beacon::net::http::HttpClient, url: &str) -> Result<String, String> {
    let request = http::Request::get(url)
        .body(http_body_util::Full::default())
        .map_err(|e| e.to_string())?;
    let response = http
        .request(request)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let body = beacon::net::http::read_body(response.into_body(), 1 << 22)
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// A counter's value in a Prometheus text page (0 when absent).
fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A temporary directory the PostgreSQL server's user can reach.
fn tempdir() -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!(
        "beacon-stress-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    Ok(dir.display().to_string())
}

/// `scripts/postgres.sh start|stop DIR/pg [PORT]`; the URL when starting.
fn postgres(command: &str, dir: &str, port: Option<u16>) -> Result<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
    let out = Command::new(script)
        .args([command, &format!("{dir}/pg")])
        .args(port.map(|p| p.to_string()))
        .output()
        .map_err(|e| format!("{script}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "PostgreSQL {command}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
