//! The side-by-side runs: every contender on the same workload, one after
//! another, on the same machine — so the results compare as ratios.

use crate::{
    load::{closed_loop, open_loop, Route, Sample, Workload},
    stats::{back_after, buckets, slower_than, Bucket, Summary},
    topology::{Backends, Proxy},
};
use beacon::{
    BreakerConfig, ClientConfig, RegistryClient, Resolver, ResolverConfig, ServiceClient,
};
use serde::Serialize;
use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

/// The four ways to reach the ratings instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Contender {
    /// Beacon's client in the caller.
    Beacon,
    /// A bare hyper-util client, static round-robin: the floor.
    BareClient,
    /// HAProxy in front.
    Haproxy,
    /// nginx in front.
    Nginx,
}

impl Contender {
    /// All four, in report order.
    pub const ALL: [Contender; 4] = [Self::Beacon, Self::BareClient, Self::Haproxy, Self::Nginx];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Beacon => "beacon",
            Self::BareClient => "bare client",
            Self::Haproxy => "haproxy",
            Self::Nginx => "nginx",
        }
    }
}

/// Durations and rates of a benchmark run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Steady: length and callers.
    pub steady_for: Duration,
    /// Callers in the steady scenario.
    pub concurrency: usize,
    /// Fault scenarios: length and request rate.
    pub faults_for: Duration,
    /// Requests per second in the fault scenarios.
    pub rate: u32,
    /// When the fault starts and when it is undone.
    pub fault_at: Duration,
    /// When the paused instance resumes / the killed one restarts.
    pub heal_at: Duration,
}

impl Plan {
    /// The full run (`make bench`).
    pub fn full() -> Self {
        Self {
            steady_for: Duration::from_secs(4),
            concurrency: 32,
            faults_for: Duration::from_secs(10),
            rate: 400,
            fault_at: Duration::from_secs(2),
            heal_at: Duration::from_secs(6),
        }
    }

    /// A short run (`make bench-quick`).
    pub fn quick() -> Self {
        Self {
            steady_for: Duration::from_secs(1),
            concurrency: 16,
            faults_for: Duration::from_secs(5),
            rate: 200,
            fault_at: Duration::from_secs(1),
            heal_at: Duration::from_secs(3),
        }
    }
}

/// One contender's result in one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Who.
    pub contender: Contender,
    /// Which scenario.
    pub scenario: &'static str,
    /// The headline numbers.
    pub summary: Summary,
    /// Requests slower than twice the contender's steady p99, or failed.
    pub slow: Option<usize>,
    /// Time from healing the instance until it answered again, in ms.
    pub back_after_ms: Option<f64>,
    /// The run in 100 ms slices (the timeline).
    pub timeline: Vec<Bucket>,
}

/// Timeouts every contender works with: 100 ms per try, and the caller
/// gives up after 2 s in all.
pub const PER_TRY: Duration = Duration::from_millis(100);
const CALLER_PATIENCE: Duration = Duration::from_secs(2);

/// A contender ready to take load; proxies and resolvers live as long as it.
struct Ready {
    route: Route,
    _proxy: Option<Proxy>,
}

async fn ready(
    contender: Contender,
    urls: Vec<String>,
    registry: &str,
) -> Result<(Ready, Option<String>), String> {
    Ok(match contender {
        Contender::Beacon => {
            let client = RegistryClient::from_list(registry, None).map_err(|e| e.to_string())?;
            let resolver = Resolver::new(
                client,
                ResolverConfig {
                    // Like HAProxy's fall 1 / nginx's max_fails=1 below.
                    breaker: BreakerConfig {
                        failure_threshold: 1,
                        open_for: Duration::from_secs(2),
                        ..BreakerConfig::default()
                    },
                    ..ResolverConfig::default()
                },
            );
            let config = ClientConfig {
                attempt_timeout: PER_TRY,
                deadline: CALLER_PATIENCE,
                ..ClientConfig::default()
            };
            let ratings = ServiceClient::new(
                &resolver,
                &"ratings".parse().map_err(|e| format!("{e}"))?,
                config,
            );
            let view = ratings.view().clone();
            let started = Instant::now();
            while view.endpoints().len() < 3 {
                if started.elapsed() > Duration::from_secs(10) {
                    return Err("Beacon never saw 3 instances".into());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (
                Ready {
                    route: Route::Beacon(ratings),
                    _proxy: None,
                },
                None,
            )
        }
        Contender::BareClient => (
            Ready {
                route: Route::fixed(urls),
                _proxy: None,
            },
            None,
        ),
        Contender::Haproxy => {
            let proxy = Proxy::haproxy(&urls)?;
            let config = proxy.config.clone();
            (
                Ready {
                    route: Route::proxy(proxy.url.clone()),
                    _proxy: Some(proxy),
                },
                Some(config),
            )
        }
        Contender::Nginx => {
            let proxy = Proxy::nginx(&urls)?;
            let config = proxy.config.clone();
            (
                Ready {
                    route: Route::proxy(proxy.url.clone()),
                    _proxy: Some(proxy),
                },
                Some(config),
            )
        }
    })
}

/// Shared backends, for fault injection from inside a run.
pub type SharedBackends = Arc<Mutex<Backends>>;

fn with<T>(backends: &SharedBackends, f: impl FnOnce(&mut Backends) -> T) -> T {
    f(&mut backends.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Runs every scenario for every contender. Returns the outcomes and the
/// proxies' configurations.
pub async fn run_all(
    backends: SharedBackends,
    plan: Plan,
) -> Result<(Vec<Outcome>, Vec<(String, String)>), String> {
    let registry = with(&backends, |b| b.registry_url());
    let mut outcomes = Vec::new();
    let mut configs = Vec::new();
    let path = "/ratings/camera".to_owned();
    // Steady: in rounds, each contender in turn with the order rotated, so
    // none gets a warmer (or busier) machine than the others.
    let rounds = 3;
    let mut steady_samples: Vec<Vec<Sample>> = vec![Vec::new(); Contender::ALL.len()];
    heal(&backends, &registry).await?;
    for round in 0..rounds {
        for k in 0..Contender::ALL.len() {
            let which = (k + round) % Contender::ALL.len();
            let contender = Contender::ALL[which];
            let urls = with(&backends, |b| b.urls());
            let (ready_contender, config) = ready(contender, urls, &registry).await?;
            if let (Some(config), 0) = (config, round) {
                configs.push((contender.name().to_owned(), config));
            }
            let workload = Workload {
                path: path.clone(),
                timeout: CALLER_PATIENCE,
                duration: plan.steady_for / rounds as u32,
            };
            steady_samples[which]
                .extend(closed_loop(&ready_contender.route, &workload, plan.concurrency).await);
        }
    }
    for (which, contender) in Contender::ALL.into_iter().enumerate() {
        eprintln!("== {} ==", contender.name());
        let steady = outcome(
            contender,
            "steady",
            &steady_samples[which],
            plan.steady_for,
            None,
            None,
        );
        let steady_p99 = Duration::from_secs_f64(steady.summary.p99_ms / 1000.0);
        eprintln!(
            "   steady: {:.0} req/s, p99 {:.2} ms",
            steady.summary.throughput, steady.summary.p99_ms
        );
        outcomes.push(steady);

        for (scenario, instance) in [("hang", 2u16), ("crash", 3u16)] {
            heal(&backends, &registry).await?;
            let urls = with(&backends, |b| b.urls());
            let (ready_contender, _) = ready(contender, urls, &registry).await?;
            let workload = Workload {
                path: path.clone(),
                timeout: CALLER_PATIENCE,
                duration: plan.faults_for,
            };
            let faults = {
                let backends = Arc::clone(&backends);
                move |start: Instant| async move {
                    tokio::time::sleep_until(start + plan.fault_at).await;
                    let (break_it, heal_it) = if scenario == "hang" {
                        ("STOP", "CONT")
                    } else {
                        ("KILL", "")
                    };
                    let b = Arc::clone(&backends);
                    let _ = tokio::task::spawn_blocking(move || {
                        with(&b, |b| b.signal(instance, break_it))
                    })
                    .await;
                    tokio::time::sleep_until(start + plan.heal_at).await;
                    let b = Arc::clone(&backends);
                    let _ = tokio::task::spawn_blocking(move || {
                        with(&b, |b| {
                            if heal_it.is_empty() {
                                b.start_ratings(instance)
                            } else {
                                b.signal(instance, heal_it)
                            }
                        })
                    })
                    .await;
                }
            };
            let samples = open_loop(&ready_contender.route, &workload, plan.rate, faults).await;
            let who = format!("ratings-{instance}");
            let result = outcome(
                contender,
                scenario,
                &samples,
                plan.faults_for,
                Some(steady_p99 * 2),
                Some((&who, plan.heal_at)),
            );
            eprintln!(
                "   {scenario}: {} errors, {} slow, back after {:?} ms",
                result.summary.errors,
                result.slow.unwrap_or(0),
                result.back_after_ms.map(|ms| ms.round())
            );
            outcomes.push(result);
        }
    }
    heal(&backends, &registry).await?;
    Ok((outcomes, configs))
}

fn outcome(
    contender: Contender,
    scenario: &'static str,
    samples: &[Sample],
    duration: Duration,
    slow_limit: Option<Duration>,
    healed: Option<(&str, Duration)>,
) -> Outcome {
    Outcome {
        contender,
        scenario,
        summary: Summary::of(samples, duration),
        slow: slow_limit.map(|limit| slower_than(samples, limit)),
        back_after_ms: healed
            .and_then(|(who, at)| back_after(samples, who, at))
            .map(|d| d.as_secs_f64() * 1000.0),
        timeline: buckets(samples, Duration::from_millis(100), duration),
    }
}

/// Every instance running, unpaused, and listed by the registry.
async fn heal(backends: &SharedBackends, registry: &str) -> Result<(), String> {
    let b = Arc::clone(backends);
    tokio::task::spawn_blocking(move || with(&b, Backends::heal))
        .await
        .map_err(|e| e.to_string())??;
    let client = RegistryClient::from_list(registry, None).map_err(|e| e.to_string())?;
    let service = "ratings".parse().map_err(|e| format!("{e}"))?;
    let started = Instant::now();
    loop {
        let listed = client
            .resolve(&service)
            .await
            .map(|a| a.instances.len())
            .unwrap_or(0);
        if listed == 3 {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(15) {
            return Err(format!(
                "only {listed} ratings instances listed after healing"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
