//! The chaos run: the demo's topology under load while ratings instances
//! are killed, paused, resumed and restarted at random and the registry is
//! restarted twice. Every market answer must stay a 200 with four ratings,
//! none of them missing once warmed up.

use crate::topology::{binary, Backends};
use beacon_kit::process::Service;
use rand::{seq::IndexedRandom, Rng};
use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

/// The chaos run's findings.
#[derive(Debug, Default)]
pub struct Findings {
    /// Market answers checked.
    pub answers: usize,
    /// Ratings shown live / from cache.
    pub live: usize,
    /// Ratings served from cache.
    pub cached: usize,
    /// Every broken promise, with when it happened.
    pub violations: Vec<String>,
    /// Answer latencies, in milliseconds.
    pub latencies: Vec<f64>,
    /// The actions taken, in order.
    pub actions: Vec<String>,
}

/// The demo's topology, and which instances are paused.
struct Topology {
    backends: Backends,
    paused: BTreeSet<u16>,
    market: Service,
}

impl Topology {
    fn start() -> Result<Self, String> {
        let backends = Backends::start()?;
        let registry = backends.registry_url();
        let args = ["--listen", "127.0.0.1:0", "--registry", &registry];
        let market = Service::start(&binary("beacon-market"), &args)?;
        Ok(Self {
            backends,
            paused: BTreeSet::new(),
            market,
        })
    }

    /// One random action among those possible now; returns what it did.
    fn act(&mut self) -> Result<String, String> {
        let mut possible = Vec::new();
        for n in 1..=3 {
            if !self.backends.is_up(n) {
                possible.push(("restart", n));
            } else if self.paused.contains(&n) {
                possible.push(("resume", n));
            } else {
                possible.extend([("kill -9", n), ("pause", n), ("stop", n)]);
            }
        }
        let Some(&(what, n)) = possible.choose(&mut rand::rng()) else {
            return Ok("nothing to do".into());
        };
        match what {
            "kill -9" => self.backends.signal(n, "KILL")?,
            "stop" => self.backends.signal(n, "TERM")?,
            "pause" => self.backends.signal(n, "STOP")?,
            "resume" => self.backends.signal(n, "CONT")?,
            _ => self.backends.start_ratings(n)?,
        }
        if what == "pause" {
            self.paused.insert(n);
        } else {
            self.paused.remove(&n);
        }
        Ok(format!("{what} ratings-{n}"))
    }
}

/// Runs chaos for `duration`, loading the market from `workers` callers.
pub async fn run(duration: Duration, workers: usize) -> Result<Findings, String> {
    let topology = Arc::new(Mutex::new(Topology::start()?));
    let market = lock(&topology).market.url.clone();
    let http = beacon::transport::http_client(Duration::from_millis(500));
    // Warm up: every rating fetched live once, so the cache holds all four.
    let warm = Instant::now();
    loop {
        if let Ok((_, sources)) = things(&http, &market).await {
            if sources.iter().all(|s| s == "live") {
                break;
            }
        }
        if warm.elapsed() > Duration::from_secs(20) {
            return Err("the market never showed four live ratings".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let findings = Arc::new(Mutex::new(Findings::default()));
    let until = Instant::now() + duration;
    let load: Vec<_> = (0..workers)
        .map(|_| {
            let (http, market, findings) = (http.clone(), market.clone(), Arc::clone(&findings));
            tokio::spawn(async move {
                while Instant::now() < until {
                    let started = Instant::now();
                    let answer = things(&http, &market).await;
                    let took = started.elapsed().as_secs_f64() * 1000.0;
                    {
                        let mut f = findings.lock().unwrap_or_else(PoisonError::into_inner);
                        f.answers += 1;
                        f.latencies.push(took);
                        match answer {
                            Ok((4, sources)) => {
                                for source in sources {
                                    match source.as_str() {
                                        "live" => f.live += 1,
                                        "cached" => f.cached += 1,
                                        other => {
                                            f.violations.push(format!("a rating was {other:?}"))
                                        }
                                    }
                                }
                            }
                            Ok((n, _)) => f.violations.push(format!("{n} ratings instead of 4")),
                            Err(e) => f.violations.push(e),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
            })
        })
        .collect();
    let started = Instant::now();
    let registry_restarts = [duration / 3, duration * 2 / 3];
    let mut restarted = 0;
    while Instant::now() < until {
        let pause = rand::rng().random_range(1_000..2_500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if Instant::now() >= until {
            break;
        }
        let restart_registry = restarted < 2 && started.elapsed() >= registry_restarts[restarted];
        let t = Arc::clone(&topology);
        let action = tokio::task::spawn_blocking(move || {
            let mut topology = lock(&t);
            if restart_registry {
                topology
                    .backends
                    .restart_registry()
                    .map(|()| "restart the registry".to_owned())
            } else {
                topology.act()
            }
        })
        .await
        .map_err(|e| e.to_string())??;
        restarted += usize::from(restart_registry);
        let line = format!("{:>6.1}s  {action}", started.elapsed().as_secs_f64());
        eprintln!("{line}");
        lock(&findings).actions.push(line);
    }
    for worker in load {
        let _ = worker.await;
    }
    // Leave nothing paused or running.
    let t = Arc::clone(&topology);
    let _ = tokio::task::spawn_blocking(move || {
        let mut topology = lock(&t);
        for n in 1..=3 {
            let _ = topology.backends.signal(n, "TERM");
        }
    })
    .await;
    let findings = std::mem::take(&mut *lock(&findings));
    Ok(findings)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `GET /api/things`: the number of things and each rating's source.
async fn things(
    http: &beacon::transport::HttpClient,
    market: &str,
) -> Result<(usize, Vec<String>), String> {
    let request = http::Request::get(format!("{market}/api/things"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(3), http.request(request))
        .await
        .map_err(|_| "the market did not answer within 3 s".to_owned())?
        .map_err(|e| format!("the market failed: {e}"))?;
    let status = response.status();
    let body = beacon::transport::read_body(response.into_body(), 1 << 20)
        .await
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("the market answered {status}"));
    }
    let things: Vec<serde_json::Value> =
        serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let sources = things
        .iter()
        .map(|t| {
            t["rating"]["source"]
                .as_str()
                .unwrap_or("missing")
                .to_owned()
        })
        .collect();
    Ok((things.len(), sources))
}
