//! The stress load while the store fails under it: the disk under a
//! SQLite file fills up, the PostgreSQL server stops and comes back, or a
//! market replica is killed (`SIGKILL`) mid-write. Each run has three
//! phases — load, fault, healed — and ends with the same check as
//! `make stress`: every write a market acknowledged must be in the store's
//! history as acknowledged ([`super::verify`]). Writes that failed (503,
//! 507) or went unanswered may or may not have landed; they are not
//! acknowledged, and the check allows either.
//!
//! Besides the verdict a run measures what a user sees: how long a failed
//! write took to fail, how long the page took and what it said while the
//! store was down, what `/_health?deep=true` said, and how long after the
//! fault was healed the first write was acknowledged again.

use super::{
    gather, postgres, spawn_workers, start_market, start_registry, tempdir, verify_store,
    workload::{cart_cookie, CartChange, Op, Seen, Worker},
    Db, Options,
};
use beacon::net::http::{read_body, HttpClient};
use beacon_market::session::COOKIE;
use http::{header, Request, StatusCode};
use http_body_util::Full;
use std::{
    collections::BTreeMap,
    io::Write,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The SQLite file's disk (a small tmpfs) is filled up, then freed.
    DiskFull,
    /// The PostgreSQL server is stopped, then started again on its port.
    PostgresDown,
    /// One of the two market replicas is killed, then started again.
    ReplicaKilled(Db),
}

impl Fault {
    /// Every scenario, in the order `make stress` runs them.
    pub const ALL: [Fault; 4] = [
        Fault::DiskFull,
        Fault::PostgresDown,
        Fault::ReplicaKilled(Db::Sqlite),
        Fault::ReplicaKilled(Db::Postgres),
    ];

    /// As printed.
    pub fn name(self) -> &'static str {
        match self {
            Self::DiskFull => "disk full",
            Self::PostgresDown => "PostgreSQL stopped",
            Self::ReplicaKilled(_) => "replica SIGKILLed",
        }
    }

    /// The store it runs on.
    pub fn db(self) -> Db {
        match self {
            Self::DiskFull => Db::Sqlite,
            Self::PostgresDown => Db::Postgres,
            Self::ReplicaKilled(db) => db,
        }
    }
}

/// What a fault run found.
#[derive(Debug, Clone)]
pub struct FaultReport {
    /// What went wrong.
    pub fault: Fault,
    /// Writes (cart changes, checkouts, customer saves) acknowledged.
    pub acknowledged: u64,
    /// Writes that failed, by status (0: no answer).
    pub failed: BTreeMap<u16, u64>,
    /// The longest a write took to fail while the store was down.
    pub slowest_failure: Duration,
    /// The longest the page (`GET /`) took while the store was down, and
    /// whether every one of those answers was a 200.
    pub page_while_down: (Duration, bool),
    /// Whether the page said the cart was unavailable at least once.
    pub page_said_unavailable: bool,
    /// Statuses `/_health?deep=true` answered while the store was down.
    pub health_while_down: Vec<u16>,
    /// From the fault's end to the first acknowledged write.
    pub recovery: Option<Duration>,
    /// The acknowledged-versus-stored check.
    pub verdict: super::verify::Verdict,
}

impl FaultReport {
    /// Nothing acknowledged was lost and writes came back.
    pub fn passed(&self) -> bool {
        self.verdict.lost.is_empty() && self.recovery.is_some()
    }
}

/// How long each phase lasts: a third of `options.duration` each (at
/// least a second).
fn phase(options: &Options) -> Duration {
    (options.duration / 3).max(Duration::from_secs(1))
}

/// Longest wait for the first acknowledged write after the fault ends.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

/// Runs the load with `fault` in the middle, and checks the store after.
pub async fn run(fault: Fault, options: &Options) -> Result<FaultReport, String> {
    let dir = tempdir()?;
    let outcome = match fault {
        Fault::DiskFull => on_tmpfs(&dir, options).await,
        _ => on_store(fault, &dir, options).await,
    };
    if fault.db() == Db::Postgres {
        let _ = postgres("stop", &dir, None);
    }
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// The disk-full scenario: SQLite on a tmpfs of its own (needs root).
async fn on_tmpfs(dir: &str, options: &Options) -> Result<FaultReport, String> {
    let disk = format!("{dir}/disk");
    std::fs::create_dir_all(&disk).map_err(|e| format!("{disk}: {e}"))?;
    run_command("mount", &["-t", "tmpfs", "-o", "size=32m", "tmpfs", &disk])
        .map_err(|e| format!("the disk-full scenario mounts a small tmpfs and needs root: {e}"))?;
    let outcome = load(
        Fault::DiskFull,
        &format!("sqlite:{disk}/market.db"),
        dir,
        options,
    )
    .await;
    let _ = run_command("umount", &["-l", &disk]);
    outcome
}

/// The other scenarios, on SQLite in `dir` or on a PostgreSQL server there.
async fn on_store(fault: Fault, dir: &str, options: &Options) -> Result<FaultReport, String> {
    let url = match fault.db() {
        Db::Sqlite => format!("sqlite:{dir}/market.db"),
        Db::Postgres => postgres("start", dir, None)?,
    };
    load(fault, &url, dir, options).await
}

async fn load(
    fault: Fault,
    url: &str,
    dir: &str,
    options: &Options,
) -> Result<FaultReport, String> {
    let registry = start_registry()?;
    let mut markets = vec![
        start_market(&registry, url, "127.0.0.1:0")?,
        start_market(&registry, url, "127.0.0.1:0")?,
    ];
    let urls: Vec<String> = markets.iter().map(|m| m.url.clone()).collect();
    let http = beacon::net::http::http_client(Duration::from_secs(1));
    super::create_customers(&http, &urls[0], options.customers).await?;

    let phase = phase(options);
    let started = tokio::time::Instant::now();
    let workers = spawn_workers(&urls, options, &http, started + 3 * phase);
    // The probe: a cart of its own beyond the workers', verified with theirs.
    let probe = Probe::new(&http, options.carts);

    // The load runs alone for a phase (this is load, not a wait for a state).
    tokio::time::sleep(phase).await;
    let fill = Path::new(dir).join("disk").join("fill");
    match fault {
        Fault::DiskFull => fill_up(&fill)?,
        Fault::PostgresDown => drop(postgres("stop", dir, None)?),
        Fault::ReplicaKilled(_) => markets[1].signal("KILL"),
    }
    let mut down = Down::default();
    let fault_ends = Instant::now() + phase;
    while Instant::now() < fault_ends {
        down.look(&http, &urls[0], &cart_cookie(options.carts))
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    match fault {
        Fault::DiskFull => std::fs::remove_file(&fill).map_err(|e| format!("{e}"))?,
        Fault::PostgresDown => drop(postgres("start", dir, Some(port_of(url)?))?),
        Fault::ReplicaKilled(_) => {
            let listen = urls[1].trim_start_matches("http://").to_owned();
            let mut killed =
                std::mem::replace(&mut markets[1], start_market(&registry, url, &listen)?);
            let _ = killed.wait(Duration::from_secs(5));
        }
    }
    let healed = Instant::now();
    let mut probe = probe;
    let recovery = probe
        .until_acknowledged(&urls, healed + RECOVERY_LIMIT)
        .await;
    let recovery = recovery.then(|| healed.elapsed());

    let mut seen = gather(workers).await?;
    seen.answers.append(&mut probe.seen.answers);
    seen.carts.append(&mut probe.seen.carts);
    for market in markets {
        market.stop()?;
    }
    drop(registry);
    let verdict = verify_store(url, &seen, options.carts + 1, options.customers).await?;
    Ok(summarize(fault, &seen, down, recovery, verdict))
}

/// What the page and the deep health check said while the store was down.
#[derive(Debug, Default)]
struct Down {
    page_slowest: Duration,
    page_all_ok: bool,
    pages: u32,
    said_unavailable: bool,
    health: Vec<u16>,
}

impl Down {
    async fn look(&mut self, http: &HttpClient, market: &str, cart: &str) {
        let started = Instant::now();
        let page = get(http, &format!("{market}/"), Some(cart)).await;
        self.page_slowest = self.page_slowest.max(started.elapsed());
        self.page_all_ok = (self.pages == 0 || self.page_all_ok)
            && page.as_ref().is_some_and(|(s, _)| *s == StatusCode::OK);
        self.pages += 1;
        self.said_unavailable |= page
            .as_ref()
            .is_some_and(|(_, body)| body.contains("unavailable right now"));
        let health = get(http, &format!("{market}/_health?deep=true"), None).await;
        self.health.push(health.map_or(0, |(s, _)| s.as_u16()));
    }
}

/// Writes to a cart no worker touches, to tell when writes are back.
struct Probe {
    worker: Worker,
    cart: usize,
    /// Whether the probe's thing is in its cart (as last acknowledged).
    holds: bool,
    seen: Seen,
}

impl Probe {
    fn new(http: &HttpClient, cart: usize) -> Self {
        let worker = Worker {
            id: usize::MAX,
            markets: Vec::new(),
            carts: cart + 1,
            customers: 0,
            http: http.clone(),
        };
        Self {
            worker,
            cart,
            holds: false,
            seen: Seen::default(),
        }
    }

    /// Adds or removes its thing through each market in turn until one
    /// such write is acknowledged by every market (or `until` passes).
    async fn until_acknowledged(&mut self, markets: &[String], until: Instant) -> bool {
        for market in markets {
            loop {
                if Instant::now() >= until {
                    return false;
                }
                let change = if self.holds {
                    CartChange::Remove("camera")
                } else {
                    CartChange::Add("camera")
                };
                let before = self.seen.carts.len();
                self.worker
                    .cart_change(&mut self.seen, market, self.cart, change)
                    .await;
                let status = self.seen.answers.last().and_then(|a| a.status);
                if self.seen.carts.len() > before {
                    self.holds = !self.holds;
                    break;
                }
                if status.is_some_and(|s| s.is_client_error()) {
                    // A write that failed but landed moved the cart on.
                    self.holds = !self.holds;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        true
    }
}

fn summarize(
    fault: Fault,
    seen: &Seen,
    down: Down,
    recovery: Option<Duration>,
    verdict: super::verify::Verdict,
) -> FaultReport {
    let mut acknowledged = 0;
    let mut failed: BTreeMap<u16, u64> = BTreeMap::new();
    let mut slowest_failure = Duration::ZERO;
    for answer in &seen.answers {
        let write = matches!(
            answer.op,
            Op::CartAdd | Op::CartRemove | Op::Checkout | Op::CustomerPut
        );
        match answer.status {
            _ if !write => {}
            Some(s) if s.is_success() => acknowledged += 1,
            Some(s) if s.is_client_error() => {}
            status => {
                *failed.entry(status.map_or(0, |s| s.as_u16())).or_default() += 1;
                slowest_failure = slowest_failure.max(answer.took);
            }
        }
    }
    FaultReport {
        fault,
        acknowledged,
        failed,
        slowest_failure,
        page_while_down: (down.page_slowest, down.page_all_ok),
        page_said_unavailable: down.said_unavailable,
        health_while_down: down.health,
        recovery,
        verdict,
    }
}

/// Fills the filesystem holding `path` until it has no space left.
fn fill_up(path: &Path) -> Result<(), String> {
    let mut file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let block = vec![0u8; 64 * 1024];
    loop {
        match file.write(&block) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => return Ok(()), // ENOSPC
            Err(e) => return Err(format!("filling {}: {e}", path.display())),
        }
    }
}

/// The port in a `postgres://user@127.0.0.1:PORT/db` URL.
fn port_of(url: &str) -> Result<u16, String> {
    url.rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
        .ok_or_else(|| format!("no port in {url}"))
}

/// A GET with an optional cart cookie: the status and body, or `None`
/// without an answer within 10 s.
async fn get(http: &HttpClient, url: &str, cart: Option<&str>) -> Option<(StatusCode, String)> {
    let mut request = Request::get(url);
    if let Some(cart) = cart {
        request = request.header(header::COOKIE, format!("{COOKIE}={cart}"));
    }
    let request = request.body(Full::default()).ok()?;
    let answer = async {
        let response = http.request(request).await.ok()?;
        let status = response.status();
        let body = read_body(response.into_body(), 1 << 20).await.ok()?;
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .ok()
        .flatten()
}

fn run_command(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_read_from_a_postgres_url() {
        assert_eq!(
            port_of("postgres://beacon@127.0.0.1:41234/postgres"),
            Ok(41234)
        );
        assert!(port_of("postgres://beacon@localhost/postgres").is_err());
    }
}
