//! The side-by-side runs: every contender on the same workload, in turns
//! (the steady scenario's interleaved), on the same machine, repeated — so
//! the results compare as ratios and every headline is a median with its
//! range.

use crate::{
    contenders::{ready, Contender, Ready, Wire, CALLER_PATIENCE},
    detection::Detection,
    faults::{served, share, Fault, GRAY_SLOW},
    load::{closed_loop, open_loop, Route, Sample, Workload},
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

/// What every request asks for.
const PATH: &str = "/ratings/camera";

/// Durations, rates and repetitions of a benchmark run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Steady: each contender's time in each run, in all (taken in turns of
    /// [`STEADY_TURN`]).
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
    /// For each time the instance was healed (once, or once per strike of
    /// a repeated fault): how long until it answered again, in ms; `None`
    /// when it did not before the next strike (or the run's end).
    pub back_after_ms: Vec<Option<f64>>,
    /// Whether (and when) the contender marked the faulty instance down.
    pub detection: Option<Detection>,
    /// The run in 100 ms slices (the timeline).
    pub timeline: Vec<Bucket>,
    /// Beacon in the steady scenario: extra requests its hedging sent, and
    /// retries made.
    pub extra_requests: Option<ExtraRequests>,
    /// Fault runs: requests started before the fault (all healthy).
    pub before: Option<Summary>,
    /// Fault runs: requests started while the fault lasted.
    pub during: Option<Summary>,
    /// Fault runs: of the calls started while the fault lasted, the share
    /// that took longer than [`GRAY_SLOW`] or failed.
    pub late_share: Option<f64>,
    /// Fault runs: the share of all requests reaching the instances that
    /// the faulty one took, from when the contender had time to react
    /// until the heal — counted by the instances themselves, so attempts
    /// that failed there count too.
    pub faulty_share: Option<f64>,
    /// Fault runs: the share of answers the faulty instance gave from two
    /// seconds after the heal to the end (a third, when fully back).
    pub healed_share: Option<f64>,
}

/// Requests Beacon sent beyond one per call.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ExtraRequests {
    /// Hedges sent.
    pub hedges: u64,
    /// Hedges the budget refused.
    pub hedges_refused: u64,
    /// Retries made.
    pub retries: u64,
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
            back_after_ms: Vec::new(),
            detection: None,
            timeline: Vec::new(),
            extra_requests: None,
            before: None,
            during: None,
            late_share: None,
            faulty_share: None,
            healed_share: None,
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

/// Runs `f` on the backends, whoever held the lock last.
pub fn with<T>(backends: &SharedBackends, f: impl FnOnce(&mut Backends) -> T) -> T {
    f(&mut backends.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Runs the steady scenario (when `steady`) and each of `faults` for every
/// contender `plan.runs` times, each run with the contenders' order
/// rotated so none always gets the warmest (or busiest) machine.
pub async fn run_all(
    backends: SharedBackends,
    plan: Plan,
    steady: bool,
    faults: &[Fault],
) -> Result<Comparison, String> {
    let registry = with(&backends, |b| b.registry_url());
    let mut outcomes = Vec::new();
    let mut configs = Vec::new();
    // Beacon without its deadline header only where it is measured.
    let lineup: &[Contender] = match steady {
        true => &Contender::STEADY,
        false => &Contender::ALL,
    };
    heal(&backends, &registry).await?;
    for run in 0..plan.runs {
        let mut readies = Vec::new();
        for k in 0..lineup.len() {
            let contender = lineup[(k + run) % lineup.len()];
            let urls = with(&backends, |b| b.urls());
            let ready = ready(contender, urls, &registry, &Wire::http1()).await?;
            if let (Some(config), 0) = (ready.config(), run) {
                configs.push((contender.name().to_owned(), config));
            }
            readies.push((contender, ready));
        }
        if steady {
            outcomes.extend(steady_runs(&readies, plan, run).await);
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
    let count = Contender::ALL.len();
    for run in 0..plan.runs {
        for k in 0..count {
            let contender = Contender::ALL[(k + run) % count];
            for &fault in faults {
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

/// How long each contender's turns in the steady scenario last: each gets
/// `steady_for` in all, in turns this long taken in rotation.
pub const STEADY_TURN: Duration = Duration::from_millis(500);

/// Every contender of `readies` at its maximum throughput, closed loop, in
/// turns of [`STEADY_TURN`] taken in rotation until each has had
/// `plan.steady_for`: whatever the machine does meanwhile (other load, its
/// clock speed) falls on every contender alike, instead of on whichever ran
/// then. Connections stay open between turns.
///
/// Each contender first has one turn that is not measured: the first load
/// after the contenders are made opens their connections and wakes the
/// instances, and in earlier reports it made every contender's first run
/// its slowest, widening the ranges without telling them apart.
pub async fn steady_runs(readies: &[(Contender, Ready)], plan: Plan, run: usize) -> Vec<Outcome> {
    let turns = (plan.steady_for.as_secs_f64() / STEADY_TURN.as_secs_f64())
        .ceil()
        .max(1.0) as usize;
    let workload = Workload {
        path: PATH.to_owned(),
        timeout: CALLER_PATIENCE,
        duration: plan.steady_for / u32::try_from(turns).unwrap_or(u32::MAX),
    };
    for (_, ready) in readies {
        closed_loop(&ready.route, &workload, plan.concurrency).await;
    }
    let counts = |ready: &Ready| match &ready.route {
        Route::Beacon(client) => Some((client.hedges(), client.retries())),
        _ => None,
    };
    let before: Vec<_> = readies.iter().map(|(_, ready)| counts(ready)).collect();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); readies.len()];
    // Each contender's time so far, as its turns took it: a turn ends when
    // its last call does, a little after the turn's length.
    let mut ran_for = vec![Duration::ZERO; readies.len()];
    for turn in 0..turns {
        for k in 0..readies.len() {
            let at = (k + turn) % readies.len();
            let started = Instant::now();
            let taken = closed_loop(&readies[at].1.route, &workload, plan.concurrency).await;
            // As if the contender's turns ran back to back.
            samples[at].extend(taken.into_iter().map(|sample| Sample {
                at: sample.at + ran_for[at],
                ..sample
            }));
            ran_for[at] += started.elapsed();
        }
    }
    readies
        .iter()
        .zip(samples)
        .zip(ran_for)
        .zip(before)
        .map(|((((contender, ready), samples), ran_for), before)| {
            let summary = Summary::of(&samples, ran_for);
            let mut outcome = Outcome::steady(*contender, run, summary);
            if let (Some((h0, r0)), Some((h1, r1))) = (before, counts(ready)) {
                outcome.extra_requests = Some(ExtraRequests {
                    hedges: h1.sent - h0.sent,
                    hedges_refused: h1.budget_exhausted - h0.budget_exhausted,
                    retries: r1.retries - r0.retries,
                });
            }
            eprintln!(
                "run {run} steady {}: {:.0} req/s, p99 {:.2} ms, {} errors, extra {:?}",
                contender.name(),
                outcome.summary.throughput,
                outcome.summary.p99_ms,
                outcome.summary.errors,
                outcome.extra_requests,
            );
            outcome
        })
        .collect()
}

/// What the fault-injecting task saw, besides the load's samples.
struct Seen {
    detection: Option<Detection>,
    injected: Result<(), String>,
    faulty_share: Option<f64>,
}

/// One contender through one fault: open-loop load while the instance
/// breaks at `fault_at` and heals at `heal_at`, its failure handling
/// watched throughout, and the instances' own counts read once the
/// contender has had time to react and again at the heal.
async fn fault_run(
    backends: &SharedBackends,
    registry: &str,
    plan: Plan,
    contender: Contender,
    fault: Fault,
    run: usize,
    slow: Duration,
) -> Result<Outcome, String> {
    heal(backends, registry).await?;
    let urls = with(backends, |b| b.urls());
    let ready = ready(contender, urls.clone(), registry, &Wire::http1()).await?;
    let timing = fault.timing(plan.faults_for, plan.fault_at, plan.heal_at);
    let workload = Workload {
        path: PATH.to_owned(),
        timeout: CALLER_PATIENCE,
        duration: timing.length,
    };
    let index = usize::from(fault.instance() - 1);
    let watch = ready.watch(index);
    let (tx, seen) = tokio::sync::oneshot::channel();
    let inflict = {
        let backends = Arc::clone(backends);
        move |start: Instant| async move {
            let at = |d: Duration| start + d;
            let watching = tokio::spawn(watch.observe(at(timing.fault_at), at(timing.heal_at)));
            tokio::time::sleep_until(at(timing.fault_at)).await;
            let mut broke = fault.inflict(&backends).await;
            // A repeated fault's earlier strikes: healed and struck again.
            for n in 1..timing.repeats {
                let (healed_at, struck_at) = (timing.strike(n - 1).1, timing.strike(n).0);
                tokio::time::sleep_until(at(healed_at)).await;
                broke = broke.and(fault.heal(&backends).await);
                tokio::time::sleep_until(at(struck_at)).await;
                broke = broke.and(fault.inflict(&backends).await);
            }
            // Only an instance that answers can say what it took; asking
            // a paused one would delay the heal.
            let counts = fault.answers_while_broken();
            tokio::time::sleep_until(at(timing.settled_at)).await;
            let settled = if counts {
                served(&urls).await
            } else {
                Vec::new()
            };
            tokio::time::sleep_until(at(timing.last_heal())).await;
            let healing = if counts {
                served(&urls).await
            } else {
                Vec::new()
            };
            let healed = fault.heal(&backends).await;
            let _ = tx.send(Seen {
                detection: watching.await.ok().flatten(),
                injected: broke.and(healed),
                faulty_share: share(&settled, &healing, index),
            });
        }
    };
    let rate = fault.rate(plan.rate);
    let samples: Vec<Sample> = open_loop(&ready.route, &workload, rate, inflict).await;
    let seen = seen
        .await
        .map_err(|_| "the fault task ended early".to_owned())?;
    seen.injected
        .map_err(|e| format!("{}: could not break or heal: {e}", fault.name()))?;
    let who = format!("ratings-{}", fault.instance());
    let between = |from: Duration, to: Duration| -> Vec<Sample> {
        samples
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .cloned()
            .collect()
    };
    let (before, during) = (
        between(Duration::ZERO, timing.fault_at),
        between(timing.fault_at, timing.last_heal()),
    );
    let after = between(timing.last_heal() + Duration::from_secs(2), timing.length);
    // Back after each heal: its first answer before the next strike.
    let back_after_ms = (0..timing.repeats)
        .map(|n| {
            let healed = timing.strike(n).1;
            let next = if n + 1 < timing.repeats {
                timing.strike(n + 1).0
            } else {
                timing.length
            };
            back_after(&between(healed, next), &who, healed).map(|d| d.as_secs_f64() * 1000.0)
        })
        .collect();
    let answered_by_faulty = after
        .iter()
        .filter(|s| s.instance.as_deref() == Some(who.as_str()))
        .count();
    let outcome = Outcome {
        contender,
        scenario: fault.name(),
        run,
        summary: Summary::with_failures(&samples, timing.length),
        slow: Some(slower_than(&samples, slow)),
        back_after_ms,
        detection: seen.detection,
        timeline: buckets(&samples, Duration::from_millis(100), timing.length),
        extra_requests: None,
        late_share: (!during.is_empty())
            .then(|| slower_than(&during, GRAY_SLOW) as f64 / during.len() as f64),
        before: Some(Summary::with_failures(&before, timing.fault_at)),
        during: Some(Summary::with_failures(
            &during,
            timing.last_heal() - timing.fault_at,
        )),
        faulty_share: seen.faulty_share,
        healed_share: (!after.is_empty()).then(|| answered_by_faulty as f64 / after.len() as f64),
    };
    eprintln!(
        "run {run} {} {}: {} errors, {} slow, marked down: {}, back after {:?} ms, faulty share {:?}, late share {:?}",
        fault.name(),
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
        outcome
            .back_after_ms
            .iter()
            .map(|b| b.map(f64::round))
            .collect::<Vec<_>>(),
        outcome.faulty_share,
        outcome.late_share,
    );
    Ok(outcome)
}

/// Every instance running, unpaused, and listed by the registry.
async fn heal(backends: &SharedBackends, registry: &str) -> Result<(), String> {
    let b = Arc::clone(backends);
    tokio::task::spawn_blocking(move || with(&b, Backends::heal))
        .await
        .map_err(|e| e.to_string())??;
    for fault in [Fault::Gray, Fault::Flaky] {
        // An instance restarted above starts without faults; one that
        // kept running may still carry a gray fault from a broken run.
        let _ = fault.heal(backends).await;
    }
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
