//! The chaos run: the demo's topology under load while ratings instances
//! are killed, paused, resumed and restarted at random and the registry is
//! restarted twice. Every random choice comes from one seed, so a failing
//! run can be replayed; [`judge`] weighs the records afterwards.

mod verdict;

pub use verdict::{judge, Answer, Change, Rules, Shown, Verdict};

use crate::topology::{binary, Backends};
use beacon_kit::process::Service;
use rand::{rngs::StdRng, seq::IndexedRandom, Rng, SeedableRng};
use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

/// How a chaos run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the load and the chaos last.
    pub duration: Duration,
    /// Concurrent callers loading the market.
    pub workers: usize,
    /// Seeds every random choice: the same seed replays the same actions.
    pub seed: u64,
    /// The market's maximum age of a cached rating: past it a rating shows
    /// as `none`, so a run can't pass on stale values.
    pub rating_max_age: Duration,
    /// The rules the run is judged by.
    pub rules: Rules,
}

/// What a chaos run did and saw.
#[derive(Debug, Default)]
pub struct Findings {
    /// Every market answer.
    pub answers: Vec<Answer>,
    /// Every instance going up or down.
    pub changes: Vec<Change>,
    /// The actions taken, in order, with their times.
    pub actions: Vec<String>,
    /// When the load ended, from the run's origin.
    pub end: Duration,
}

/// The demo's topology, which instances are paused, and the seeded
/// source of every random choice.
struct Topology {
    backends: Backends,
    paused: BTreeSet<u16>,
    market: Service,
    rng: StdRng,
    /// The market's database file, removed at the end.
    db: std::path::PathBuf,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.db.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Topology {
    fn start(options: &Options) -> Result<Self, String> {
        let backends = Backends::start()?;
        let registry = backends.registry_url();
        let max_age = options.rating_max_age.as_millis().to_string();
        let db = std::env::temp_dir().join(format!("beacon-chaos-{}.db", std::process::id()));
        let db_url = format!("sqlite:{}", db.display());
        let secret = format!("{:032x}", rand::random::<u128>());
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--registry",
            &registry,
            "--rating-max-age-ms",
            &max_age,
            "--db",
            &db_url,
            "--secret",
            &secret,
        ];
        let market = Service::start(&binary("beacon-market"), &args)?;
        Ok(Self {
            backends,
            paused: BTreeSet::new(),
            market,
            rng: StdRng::seed_from_u64(options.seed),
            db,
        })
    }

    /// One random action among those possible now; returns what it did and
    /// the instance change it made.
    fn act(&mut self) -> Result<(String, Option<(u16, bool)>), String> {
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
        let Some(&(what, n)) = possible.choose(&mut self.rng) else {
            return Ok(("nothing to do".into(), None));
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
        let up = matches!(what, "resume" | "restart");
        Ok((format!("{what} ratings-{n}"), Some((n, up))))
    }
}

/// Runs chaos as `options` say: loads the market and records every
/// answer while ratings instances are killed, paused, resumed and
/// restarted and the registry is restarted twice. Judge the findings with
/// [`judge`].
pub async fn run(options: &Options) -> Result<Findings, String> {
    let origin = Instant::now();
    let topology = Arc::new(Mutex::new(Topology::start(options)?));
    let market = lock(&topology).market.url.clone();
    let http = beacon::net::http::http_client(Duration::from_millis(500));
    // Warm up: every rating fetched live once, so the cache holds all four.
    let warm = Instant::now();
    loop {
        if let Ok(shown) = things(&http, &market).await {
            if shown.iter().all(|s| s.source == "live") {
                break;
            }
        }
        if warm.elapsed() > Duration::from_secs(20) {
            return Err("the market never showed four live ratings".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let findings = Arc::new(Mutex::new(Findings::default()));
    let until = Instant::now() + options.duration;
    let load: Vec<_> = (0..options.workers)
        .map(|_| {
            let (http, market, findings) = (http.clone(), market.clone(), Arc::clone(&findings));
            tokio::spawn(async move {
                while Instant::now() < until {
                    let started = Instant::now();
                    let outcome = things(&http, &market).await;
                    let answer = Answer {
                        at: started - origin,
                        took: started.elapsed(),
                        outcome,
                    };
                    lock(&findings).answers.push(answer);
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
            })
        })
        .collect();
    let started = Instant::now();
    let registry_restarts = [options.duration / 3, options.duration * 2 / 3];
    let mut restarted = 0;
    while Instant::now() < until {
        let pause = lock(&topology).rng.random_range(1_000..2_500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if Instant::now() >= until {
            break;
        }
        let restart_registry = restarted < 2 && started.elapsed() >= registry_restarts[restarted];
        let t = Arc::clone(&topology);
        let (action, change) = tokio::task::spawn_blocking(move || {
            let mut topology = lock(&t);
            if restart_registry {
                topology
                    .backends
                    .restart_registry()
                    .map(|()| ("restart the registry".to_owned(), None))
            } else {
                topology.act()
            }
        })
        .await
        .map_err(|e| e.to_string())??;
        // Stamped once the action is done: a started instance is "up" from
        // when it listens, a stopped one "down" from when it exited (a
        // pause takes effect at once).
        let at = origin.elapsed();
        restarted += usize::from(restart_registry);
        let line = format!("{:>6.1}s  {action}", at.as_secs_f64());
        eprintln!("{line}");
        let mut f = lock(&findings);
        f.actions.push(line);
        if let Some((instance, up)) = change {
            f.changes.push(Change { at, instance, up });
        }
    }
    for worker in load {
        let _ = worker.await;
    }
    let end = origin.elapsed();
    // Leave nothing paused or running.
    let t = Arc::clone(&topology);
    let _ = tokio::task::spawn_blocking(move || {
        let mut topology = lock(&t);
        for n in 1..=3 {
            let _ = topology.backends.signal(n, "TERM");
        }
    })
    .await;
    let mut findings = std::mem::take(&mut *lock(&findings));
    findings.end = end;
    findings.answers.sort_by_key(|a| a.at);
    Ok(findings)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `GET /api/things`: each rating's source and instance.
async fn things(http: &beacon::net::http::HttpClient, market: &str) -> Result<Vec<Shown>, String> {
    let request = http::Request::get(format!("{market}/api/things"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(3), http.request(request))
        .await
        .map_err(|_| "the market did not answer within 3 s".to_owned())?
        .map_err(|e| format!("the market failed: {e}"))?;
    let status = response.status();
    let body = beacon::net::http::read_body(response.into_body(), 1 << 20)
        .await
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("the market answered {status}"));
    }
    let things: Vec<serde_json::Value> =
        serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    Ok(things
        .iter()
        .map(|t| Shown {
            source: t["rating"]["source"]
                .as_str()
                .unwrap_or("missing")
                .to_owned(),
            instance: t["rating"]["instance"].as_str().map(str::to_owned),
        })
        .collect())
}
