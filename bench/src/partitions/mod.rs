//! `make faults`: partitions between real hosts under a steady market load.
//!
//! The registry, each ratings instance and the market run on hosts of
//! their own (network namespaces on a bridge, [`beacon_kit::netns`]);
//! partitions are nftables rules inside the hosts. Each scenario asserts
//! its outcome and reports calls made, caller errors, registrations
//! acknowledged against those present at the end, and the time to converge
//! after the heal. Needs root.
//!
//! * [`scenarios`]: the partitions and what each must show.

pub mod scenarios;

use crate::topology::binary;
use beacon::net::http::{read_body, HttpClient};
use beacon_kit::{etcd::EtcdCluster, netns::TestNet, process::Service};
use serde_json::Value;
use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};
use tokio::{task::JoinHandle, time::Instant};

/// What one scenario showed.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was done.
    pub name: &'static str,
    /// Market calls made under the load.
    pub calls: u64,
    /// Calls that did not answer a 200 with four ratings.
    pub caller_errors: Vec<String>,
    /// Registrations the registry acknowledged (instances started).
    pub registrations: usize,
    /// Of those, registered at the end.
    pub present: usize,
    /// From the heal until the scenario's convergence condition held.
    pub converged: Duration,
    /// What the scenario checked besides, each with whether it held.
    pub checks: Vec<(String, bool)>,
}

impl Report {
    /// Every check held, no caller error, nothing lost.
    pub fn passed(&self) -> bool {
        self.caller_errors.is_empty()
            && self.registrations == self.present
            && self.checks.iter().all(|(_, held)| *held)
    }
}

/// The secret the scenario markets sign with.
const SECRET: &str = "partition scenarios, not for real data";
/// Lease of the scenario's ratings instances: short, so a lease lapses
/// within the scenario.
pub const TTL_MS: u64 = 3000;

/// The demo's topology, one process per host, on a network of its own.
#[derive(Debug)]
pub struct Topology {
    /// Instance number and its process, while it runs.
    ratings: Vec<(u16, Option<Service>)>,
    market: Option<Service>,
    /// Each registry replica's host name and process.
    registries: Vec<(String, Option<Service>)>,
    /// The registry URLs, as the hosts reach them (comma-separated).
    pub registry_urls: String,
    /// Each registry replica's URL.
    pub replicas: Vec<String>,
    /// The etcd cluster under the replicas, if any.
    pub etcd: Option<EtcdCluster>,
    db: std::path::PathBuf,
    /// The network (dropped after the processes).
    pub net: TestNet,
    http: HttpClient,
}

/// What a [`Topology`] is made of.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Ratings hosts (`ratings-1`…).
    pub instances: u16,
    /// Of those, started at once.
    pub running: u16,
    /// Two registry replicas (`registry-1`, `registry-2`) on a 3-member
    /// etcd cluster (`etcd-1`…), instead of one registry (`registry`) on its
    /// memory store.
    pub etcd: bool,
}

impl Topology {
    /// The hosts `setup` asks for; starts the registry (or the etcd
    /// cluster and both replicas), the market and the first instances.
    pub async fn start(setup: Setup) -> Result<Self, String> {
        let registries: Vec<String> = if setup.etcd {
            vec!["registry-1".into(), "registry-2".into()]
        } else {
            vec!["registry".into()]
        };
        let mut hosts = registries.clone();
        hosts.push("market".into());
        hosts.extend((1..=setup.instances).map(|n| format!("ratings-{n}")));
        if setup.etcd {
            hosts.extend((1..=3).map(|n| format!("etcd-{n}")));
        }
        let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let net = TestNet::new(&names)?;
        let replicas: Vec<String> = registries
            .iter()
            .map(|r| format!("http://{}:8400", net.host(r).ip))
            .collect();
        let etcd = if setup.etcd {
            let members: Vec<&beacon_kit::netns::Host> =
                (1..=3).map(|n| net.host(&format!("etcd-{n}"))).collect();
            Some(EtcdCluster::start_on(&members).await)
        } else {
            None
        };
        let db = std::env::temp_dir().join(format!("beacon-faults-{}.db", std::process::id()));
        let mut topology = Self {
            ratings: (1..=setup.instances).map(|n| (n, None)).collect(),
            market: None,
            registries: Vec::new(),
            registry_urls: replicas.join(","),
            replicas,
            etcd,
            db,
            net,
            http: beacon::net::http::http_client(Duration::from_millis(500)),
        };
        topology.registries = registries.into_iter().map(|r| (r, None)).collect();
        for replica in 0..topology.registries.len() {
            topology.start_registry(replica)?;
        }
        for n in 1..=setup.running {
            topology.start_ratings(n)?;
        }
        let listen = format!("{}:5000", topology.net.host("market").ip);
        let db_url = format!("sqlite:{}", topology.db.display());
        let registry = topology.registry_urls.clone();
        let args = [
            "--listen",
            &listen,
            "--registry",
            &registry,
            "--db",
            &db_url,
            "--secret",
            SECRET,
        ];
        topology.market = Some(topology.run("market", "beacon-market", &args)?);
        Ok(topology)
    }

    /// Starts registry replica `replica` (0-based) on its host.
    fn start_registry(&mut self, replica: usize) -> Result<(), String> {
        let name = self.registries[replica].0.clone();
        let listen = format!("{}:8400", self.net.host(&name).ip);
        let mut args = vec!["--listen".to_owned(), listen];
        if let Some(etcd) = &self.etcd {
            args.extend([
                "--store".into(),
                "etcd".into(),
                "--etcd".into(),
                etcd.urls().join(","),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let registry = self.run(&name, "beacon-registry", &args)?;
        self.registries[replica].1 = Some(registry);
        Ok(())
    }

    /// Kills registry replica `replica` (0-based) and starts it again; back
    /// once it listens.
    pub fn restart_registry(&mut self, replica: usize) -> Result<(), String> {
        self.registries[replica].1 = None;
        self.start_registry(replica)
    }

    fn run(&self, host: &str, program: &str, args: &[&str]) -> Result<Service, String> {
        Service::start_on(&self.net, self.net.host(host), &binary(program), args)
    }

    /// Starts ratings instance `n` on its host.
    pub fn start_ratings(&mut self, n: u16) -> Result<(), String> {
        let host = format!("ratings-{n}");
        let (instance, ip, ttl) = (
            n.to_string(),
            self.net.host(&host).ip.to_string(),
            TTL_MS.to_string(),
        );
        let registry = self.registry_urls.clone();
        let args = [
            "--instance",
            &instance,
            "--host",
            &ip,
            "--port",
            "8001",
            "--registry",
            &registry,
            "--ttl-ms",
            &ttl,
            "--allow-faults",
        ];
        let service = self.run(&host, "beacon-ratings", &args)?;
        if let Some(slot) = self.ratings.iter_mut().find(|(m, _)| *m == n) {
            slot.1 = Some(service);
        }
        Ok(())
    }

    /// Instances started (each acknowledged by the registry before it logs
    /// that it listens).
    pub fn started(&self) -> usize {
        self.ratings.iter().filter(|(_, s)| s.is_some()).count()
    }

    /// The market's URL, from the test's side.
    pub fn market_url(&self) -> String {
        self.market
            .as_ref()
            .map(|m| m.url.clone())
            .unwrap_or_default()
    }

    /// GET `url` as JSON (`None` on any failure).
    pub async fn json(&self, url: &str) -> Option<Value> {
        get_json(&self.http, url).await
    }

    /// PUTs `body` (JSON) to `url`: the status and the answer's error code.
    pub async fn put(&self, url: &str, body: &Value) -> Option<(u16, String)> {
        put_json(&self.http, url, body).await
    }

    /// DELETEs `url`: the status.
    pub async fn delete(&self, url: &str) -> Option<u16> {
        let request = http::Request::delete(url)
            .body(http_body_util::Full::default())
            .ok()?;
        let response = tokio::time::timeout(Duration::from_secs(5), self.http.request(request))
            .await
            .ok()?
            .ok()?;
        Some(response.status().as_u16())
    }

    /// Every instance of `service` the replica at `url` lists, with its
    /// registration time (sorted by id): an instance that had to register
    /// again shows a new time.
    pub async fn registrations(&self, url: &str, service: &str) -> Option<Vec<(String, u64)>> {
        let listing = self.json(&format!("{url}/v1/services/{service}")).await?;
        let mut seen: Vec<(String, u64)> = listing["instances"]
            .as_array()?
            .iter()
            .filter_map(|i| Some((i["id"].as_str()?.to_owned(), i["registered_at"].as_u64()?)))
            .collect();
        seen.sort();
        Some(seen)
    }

    /// The breaker the market's panel shows for `id` (`None`: not in its view).
    pub async fn breaker(&self, id: &str) -> Option<String> {
        let status = self
            .json(&format!("{}/api/status", self.market_url()))
            .await?;
        status["instances"]
            .as_array()?
            .iter()
            .find(|i| i["id"] == id)
            .and_then(|i| i["breaker"].as_str().map(str::to_owned))
    }

    /// The instances the (last) registry replica lists (`None`: it did not
    /// answer).
    pub async fn registered(&self) -> Option<Vec<String>> {
        self.registered_at(self.replicas.last()?).await
    }

    /// The ratings instances the replica at `url` lists.
    pub async fn registered_at(&self, url: &str) -> Option<Vec<String>> {
        self.registered_in(url, "ratings").await
    }

    /// The instances of `service` the replica at `url` lists.
    pub async fn registered_in(&self, url: &str, service: &str) -> Option<Vec<String>> {
        let listed = self.json(&format!("{url}/v1/services/{service}")).await?;
        Some(
            listed["instances"]
                .as_array()?
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect(),
        )
    }

    /// Waits (at most `limit`) until `condition` holds; how long it took.
    pub async fn until<F, Fut>(
        &self,
        limit: Duration,
        what: &str,
        mut condition: F,
    ) -> Result<Duration, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        while started.elapsed() < limit {
            if condition().await {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("{what}: not within {limit:?}"))
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.market = None;
        self.ratings.clear();
        self.registries.clear();
        self.etcd = None;
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.db.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// PUTs `body` (JSON) to `url`: the status and the answer's error code.
pub async fn put_json(http: &HttpClient, url: &str, body: &Value) -> Option<(u16, String)> {
    let request = http::Request::put(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .ok()?;
    let response = tokio::time::timeout(Duration::from_secs(5), http.request(request))
        .await
        .ok()?
        .ok()?;
    let status = response.status().as_u16();
    let body = read_body(response.into_body(), 1 << 16).await.ok()?;
    let answer: Value = serde_json::from_slice(&body).unwrap_or_default();
    Some((
        status,
        answer["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

async fn get_json(http: &HttpClient, url: &str) -> Option<Value> {
    get_json_within(http, url, Duration::from_secs(3)).await
}

/// GET `url` as JSON, waiting at most `limit` (a long-poll needs longer).
pub async fn get_json_within(http: &HttpClient, url: &str, limit: Duration) -> Option<Value> {
    let request = http::Request::get(url)
        .body(http_body_util::Full::default())
        .ok()?;
    let response = tokio::time::timeout(limit, http.request(request))
        .await
        .ok()?
        .ok()?;
    let body = read_body(response.into_body(), 1 << 20).await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// A steady load on the market's `/api/things`, from the test's side of
/// the network: every answer must be a 200 with four ratings.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Load {
    /// Starts calling `market` every 20 ms.
    pub fn start(market: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (s, c, e) = (Arc::clone(&stop), Arc::clone(&calls), Arc::clone(&errors));
        let task = tokio::spawn(async move {
            let http = beacon::net::http::http_client(Duration::from_millis(500));
            let url = format!("{market}/api/things");
            while !s.load(Ordering::Relaxed) {
                let started = Instant::now();
                let outcome = match get_json(&http, &url).await {
                    Some(Value::Array(things)) if things.len() == 4 => None,
                    Some(other) => Some(format!("answered {other}")),
                    None => Some(format!("no good answer within {:?}", started.elapsed())),
                };
                c.fetch_add(1, Ordering::Relaxed);
                if let Some(error) = outcome {
                    e.lock().unwrap_or_else(PoisonError::into_inner).push(error);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self {
            stop,
            calls,
            errors,
            task,
        }
    }

    /// Stops it: calls made, and the errors.
    pub async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let errors =
            std::mem::take(&mut *self.errors.lock().unwrap_or_else(PoisonError::into_inner));
        (self.calls.load(Ordering::Relaxed), errors)
    }
}

/// Prints the reports as a markdown table.
pub fn print_table(reports: &[Report]) {
    println!("| scenario | calls | caller errors | registrations acknowledged / present at end | converged after heal | checks | verdict |");
    println!("|---|---|---|---|---|---|---|");
    for r in reports {
        let failed: Vec<&str> = r
            .checks
            .iter()
            .filter(|(_, held)| !held)
            .map(|(c, _)| c.as_str())
            .collect();
        println!(
            "| {} | {} | {} | {} / {} | {:.2} s | {} of {} held{} | {} |",
            r.name,
            r.calls,
            r.caller_errors.len(),
            r.registrations,
            r.present,
            r.converged.as_secs_f64(),
            r.checks.len() - failed.len(),
            r.checks.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(" (failed: {})", failed.join("; "))
            },
            if r.passed() { "PASS" } else { "FAIL" },
        );
    }
}
