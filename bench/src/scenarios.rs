//! The side-by-side runs: every contender on the same workload, one after
//! another, on the same machine, repeated — so the results compare as
//! ratios and every headline is a median with its range.

use crate::{
    contenders::{ready, Contender, CALLER_PATIENCE},
    detection::Detection,
    load::{closed_loop, open_loop, Sample, Workload},
    stats::{back_after, buckets, slower_than, Bucket, Spread, Summary},
    topology::Backends,
};
use beacon::RegistryClient;
use serde::Serialize;
use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

/// Durations, rates and repetitions of a benchmark run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Steady: length of each contender's turn in each run.
    pub steady_for: Duration,
    /// Callers in the steady scenario.
    pub concurrency: usize,
    /// Fault scenarios: length.
    pub faults_for: Duration,
    /// Requests per second in the fault scenarios.
    pub rate: u32,
    /// When the fault starts.
    pub fault_at: Duration,
    /// When the paused instance resumes / the killed one restarts.
    pub heal_at: Duration,
    /// How many times everything runs: the report shows medians and ranges.
    pub runs: usize,
}

impl Plan {
    /// The full run (`make bench`).
    pub fn full() -> Self {
        Self {
            steady_for: Duration::from_secs(3),
            concurrency: 32,
            faults_for: Duration::from_secs(10),
            rate: 400,
            fault_at: Duration::from_secs(2),
            heal_at: Duration::from_secs(6),
            runs: 3,
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
            runs: 3,
        }
    }
}

/// One contender's result in one scenario of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Who.
    pub contender: Contender,
    /// Which scenario.
    pub scenario: &'static str,
    /// Which run (0-based).
    pub run: usize,
    /// The headline numbers.
    pub summary: Summary,
    /// Requests slower than the common threshold, or failed.
    pub slow: Option<usize>,
    /// Time from healing the instance until it answered again, in ms.
    pub back_after_ms: Option<f64>,
    /// Whether (and when) the contender marked the faulty instance down.
    pub detection: Option<Detection>,
    /// The run in 100 ms slices (the timeline).
    pub timeline: Vec<Bucket>,
}

impl Outcome {
    /// A steady-load result: no fault, so nothing to detect or recover.
    pub fn steady(contender: Contender, run: usize, summary: Summary) -> Self {
        Self {
            contender,
            scenario: "steady",
            run,
            summary,
            slow: None,
            back_after_ms: None,
            detection: None,
            timeline: Vec::new(),
        }
    }
}

/// Everything the side-by-side runs measured.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Every contender, scenario and run.
    pub outcomes: Vec<Outcome>,
    /// "Slow" for every contender: max(2x the bare client's median steady
    /// p99, 10 ms), in ms.
    pub slow_ms: f64,
    /// The proxies' configurations, as run.
    pub configs: Vec<(String, String)>,
}

/// Shared backends, for fault injection from inside a run.
pub type SharedBackends = Arc<Mutex<Backends>>;

fn with<T>(backends: &SharedBackends, f: impl FnOnce(&mut Backends) -> T) -> T {
    f(&mut backends.lock().unwrap_or_else(PoisonError::into_inner))
}

/// The faults: which instance, how it breaks and how it heals.
const FAULTS: [(&str, u16, &str, &str); 2] =
    [("hang", 2, "STOP", "CONT"), ("crash", 3, "KILL", "")];

/// Runs every scenario for every contender `plan.runs` times, each run
/// with the contenders' order rotated so none always gets the warmest (or
/// busiest) machine.
pub async fn run_all(backends: SharedBackends, plan: Plan) -> Result<Comparison, String> {
    let registry = with(&backends, |b| b.registry_url());
    let mut outcomes = Vec::new();
    let mut configs = Vec::new();
    let path = "/ratings/camera".to_owned();
    let count = Contender::ALL.len();
    heal(&backends, &registry).await?;
    for run in 0..plan.runs {
        for k in 0..count {
            let contender = Contender::ALL[(k + run) % count];
            let urls = with(&backends, |b| b.urls());
            let ready = ready(contender, urls, &registry).await?;
            if let (Some(config), 0) = (ready.config(), run) {
                configs.push((contender.name().to_owned(), config));
            }
            let workload = Workload {
                path: path.clone(),
                timeout: CALLER_PATIENCE,
                duration: plan.steady_for,
            };
            let samples = closed_loop(&ready.route, &workload, plan.concurrency).await;
            let summary = Summary::of(&samples, plan.steady_for);
            eprintln!(
                "run {run} steady {}: {:.0} req/s, p99 {:.2} ms, {} errors",
                contender.name(),
                summary.throughput,
                summary.p99_ms,
                summary.errors
            );
            outcomes.push(Outcome::steady(contender, run, summary));
        }
    }
    let bare_p99 = Spread::of(
        outcomes
            .iter()
            .filter(|o| o.contender == Contender::BareClient)
            .map(|o| o.summary.p99_ms),
    )
    .map_or(0.0, |s| s.median);
    let slow_ms = (2.0 * bare_p99).max(10.0);
    let slow = Duration::from_secs_f64(slow_ms / 1000.0);
    for run in 0..plan.runs {
        for k in 0..count {
            let contender = Contender::ALL[(k + run) % count];
            for fault in FAULTS {
                let outcome =
                    fault_run(&backends, &registry, plan, contender, fault, run, slow).await?;
                outcomes.push(outcome);
            }
        }
    }
    heal(&backends, &registry).await?;
    Ok(Comparison {
        outcomes,
        slow_ms,
        configs,
    })
}

/// One contender through one fault: open-loop load while the instance
/// breaks at `fault_at` and heals at `heal_at`, its failure handling
/// watched throughout.
async fn fault_run(
    backends: &SharedBackends,
    registry: &str,
    plan: Plan,
    contender: Contender,
    (scenario, instance, break_with, heal_with): (&'static str, u16, &'static str, &'static str),
    run: usize,
    slow: Duration,
) -> Result<Outcome, String> {
    heal(backends, registry).await?;
    let urls = with(backends, |b| b.urls());
    let ready = ready(contender, urls, registry).await?;
    let workload = Workload {
        path: "/ratings/camera".to_owned(),
        timeout: CALLER_PATIENCE,
        duration: plan.faults_for,
    };
    let watch = ready.watch(usize::from(instance - 1));
    let (tx, detected) = tokio::sync::oneshot::channel();
    let faults = {
        let backends = Arc::clone(backends);
        move |start: Instant| async move {
            let watching = tokio::spawn(watch.observe(start + plan.fault_at, start + plan.heal_at));
            tokio::time::sleep_until(start + plan.fault_at).await;
            let b = Arc::clone(&backends);
            let broke =
                tokio::task::spawn_blocking(move || with(&b, |b| b.signal(instance, break_with)))
                    .await;
            tokio::time::sleep_until(start + plan.heal_at).await;
            let b = Arc::clone(&backends);
            let healed = tokio::task::spawn_blocking(move || {
                with(&b, |b| {
                    if heal_with.is_empty() {
                        b.start_ratings(instance)
                    } else {
                        b.signal(instance, heal_with)
                    }
                })
            })
            .await;
            let seen = watching.await.ok().flatten();
            let _ = tx.send((seen, broke.is_ok() && healed.is_ok()));
        }
    };
    let samples: Vec<Sample> = open_loop(&ready.route, &workload, plan.rate, faults).await;
    let (detection, injected) = detected.await.unwrap_or((None, false));
    if !injected {
        return Err(format!(
            "{scenario}: could not break or heal ratings-{instance}"
        ));
    }
    let who = format!("ratings-{instance}");
    let outcome = Outcome {
        contender,
        scenario,
        run,
        summary: Summary::with_failures(&samples, plan.faults_for),
        slow: Some(slower_than(&samples, slow)),
        back_after_ms: back_after(&samples, &who, plan.heal_at).map(|d| d.as_secs_f64() * 1000.0),
        detection,
        timeline: buckets(&samples, Duration::from_millis(100), plan.faults_for),
    };
    eprintln!(
        "run {run} {scenario} {}: {} errors, {} slow, marked down: {}, back after {:?} ms",
        contender.name(),
        outcome.summary.errors,
        outcome.slow.unwrap_or(0),
        outcome
            .detection
            .as_ref()
            .map_or("n/a".to_owned(), |d| format!(
                "{:?} ms",
                d.after_ms.map(f64::round)
            )),
        outcome.back_after_ms.map(f64::round)
    );
    Ok(outcome)
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
