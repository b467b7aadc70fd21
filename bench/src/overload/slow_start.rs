//! "Slow start": an instance joins cold.
//!
//! Two `beacon-ratings` instances carry an open loop (each serving 4
//! answers at once, 5 ms of work); then ratings-3 starts and registers,
//! five times slower for its first seconds (`--warmup-ms`: a JIT, a cache
//! or a pool still filling). A caller that gives it a full share at once
//! makes a fifth of its calls five times slower; one that warms it up
//! (Envoy's slow start: weight × max(10 %, t / window)) sends it little
//! while it is slow. Side by side, one after the other on a fresh
//! ratings-3: Beacon with slow start (window = the warm-up) and without.
//! HAProxy's `slowstart` applies only to a server its health checks saw
//! down and then up, and nginx's `slow_start` is in its commercial edition
//! only: neither is shown.
//!
//! Judged: calls that failed or timed out while it joined (target 0); the
//! p99 while it joined against the p99 before (target ≤ 1.2×); and its
//! share of the answers, second by second, against the slow-start curve's
//! share, w(t) / (w(t) + 2) (target: within 10 points).

use super::{client, full, put_on_all, CAPACITY, WORK_MS};
use crate::{
    load::{open_loop, Route, Sample, Workload},
    plots::{plot_lines, Line},
    scenarios::with,
    stats::{buckets, Summary},
    topology::Backends,
};
use beacon::client::SlowStart;
use std::{
    fmt::Write as _,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

/// Where the plot goes, in the report's folder.
pub const PLOT: &str = "slow-start-share.svg";
/// The offered load, calls a second: about half what the two instances
/// give before the third joins (each gives about 640 kept full). At three
/// quarters, a burst of the open loop now and then tips them into
/// queueing past the 100 ms attempt timeout, and every breaker opens: the
/// overload scenario's business, not this one's.
const RATE: u32 = 640;
/// The instance that joins.
const JOINING: u16 = 3;

/// When the instance joins and how long it is watched.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From the start of the run to the join.
    pub join_at: Duration,
    /// How long it warms up (its `--warmup-ms`), and the slow-start window.
    pub warmup: Duration,
    /// From the join to the end of the run.
    pub after: Duration,
}

impl Timing {
    /// `make bench`'s: 5 s, then a 10 s warm-up (Envoy's default window),
    /// watched 15 s.
    pub fn full() -> Self {
        Self {
            join_at: Duration::from_secs(5),
            warmup: Duration::from_secs(10),
            after: Duration::from_secs(15),
        }
    }

    fn length(&self) -> Duration {
        self.join_at + self.after
    }
}

/// One contender's run.
#[derive(Debug, Clone)]
pub struct SlowStartRun {
    /// Who sent the calls.
    pub contender: &'static str,
    /// Answered calls before the join.
    pub steady: Summary,
    /// Calls started while it warmed up.
    pub joining: Summary,
    /// The joining instance's share of the answers, second by second from
    /// the join: (seconds since the join, share).
    pub share: Vec<(f64, f64)>,
    /// The largest gap between that share and the curve's, in points.
    pub off_curve_points: f64,
}

/// What the scenario measured.
#[derive(Debug, Clone)]
pub struct SlowStartResult {
    /// When it joined, for how long it warmed.
    pub timing: Timing,
    /// Each contender's run.
    pub runs: Vec<SlowStartRun>,
}

/// The joining instance's share by the slow-start curve, `t` into the
/// window: its weight over the three weights (the others' are 1).
pub fn curve_share(slow_start: &SlowStart, t: Duration) -> f64 {
    let weight = slow_start.weight(t);
    weight / (weight + 2.0)
}

/// Runs both contenders as `timing` says.
pub async fn measure(timing: Timing) -> Result<SlowStartResult, String> {
    let mut backends = Backends::start()?;
    let urls = backends.urls();
    put_on_all(&urls, &full(WORK_MS)).await?;
    let registry = backends.registry_url();
    let (delay, capacity, warmup) = (
        WORK_MS.to_string(),
        CAPACITY.to_string(),
        timing.warmup.as_millis().to_string(),
    );
    backends.set_args(
        JOINING,
        &[
            "--delay-ms",
            &delay,
            "--capacity",
            &capacity,
            "--warmup-ms",
            &warmup,
        ],
    );
    let backends = Arc::new(Mutex::new(backends));
    let slow_start = SlowStart::default().window(timing.warmup);
    let mut runs = Vec::new();
    for (contender, slow) in [("beacon, slow start", true), ("beacon, without", false)] {
        eprintln!("    {contender}");
        // Gone (deregistered) before the client first looks.
        with(&backends, |b| b.signal(JOINING, "TERM"))?;
        let route = Route::Beacon(client(&registry, |b| {
            b.slow_start(slow.then_some(slow_start))
        })?);
        let workload = Workload::camera(timing.length());
        // In use, its two instances known, before the run.
        let warm = Workload::camera(Duration::from_secs(1));
        open_loop(&route, &warm, RATE, |_| async {}).await;
        let joiner = Arc::clone(&backends);
        let samples = open_loop(&route, &workload, RATE, move |start| async move {
            tokio::time::sleep_until(start + timing.join_at).await;
            let started =
                tokio::task::spawn_blocking(move || with(&joiner, |b| b.start_ratings(JOINING)));
            if let Ok(Err(e)) = started.await {
                eprintln!("ratings-{JOINING} did not start: {e}");
            }
        })
        .await;
        runs.push(judge(contender, &samples, timing, &slow_start));
    }
    Ok(SlowStartResult { timing, runs })
}

/// What `samples` say of the join.
fn judge(
    contender: &'static str,
    samples: &[Sample],
    timing: Timing,
    slow_start: &SlowStart,
) -> SlowStartRun {
    let Timing {
        join_at, warmup, ..
    } = timing;
    let before: Vec<Sample> = samples.iter().filter(|s| s.at < join_at).cloned().collect();
    let during: Vec<Sample> = samples
        .iter()
        .filter(|s| s.at >= join_at && s.at < join_at + warmup)
        .cloned()
        .collect();
    let after: Vec<Sample> = samples
        .iter()
        .filter(|s| s.at >= join_at)
        .map(|s| Sample {
            at: s.at - join_at,
            ..s.clone()
        })
        .collect();
    let joining = format!("ratings-{JOINING}");
    let second = Duration::from_secs(1);
    let slices = buckets(&after, second, timing.after);
    let share: Vec<(f64, f64)> = slices
        .iter()
        .filter_map(|slice| {
            let all: usize = slice.served.values().sum();
            let its = slice.served.get(&joining).copied().unwrap_or(0);
            (all > 0).then(|| (slice.at_s, its as f64 / all as f64))
        })
        .collect();
    // Each second against the curve at its middle.
    let off_curve_points = share
        .iter()
        .map(|(at, share)| {
            let expected = curve_share(slow_start, Duration::from_secs_f64(at + 0.5));
            100.0 * (share - expected).abs()
        })
        .fold(0.0, f64::max);
    SlowStartRun {
        contender,
        steady: Summary::of(&before, join_at),
        joining: Summary::of(&during, warmup),
        share,
        off_curve_points,
    }
}

/// Draws each contender's share of the joining instance against the
/// curve's.
pub fn plot(result: &SlowStartResult, path: &Path) -> Result<(), String> {
    let slow_start = SlowStart::default().window(result.timing.warmup);
    let end = result.timing.after.as_secs_f64();
    let curve: Vec<(f64, f64)> = (0..=(end * 10.0) as u32)
        .map(|tenth| {
            let t = f64::from(tenth) / 10.0;
            (t, curve_share(&slow_start, Duration::from_secs_f64(t)))
        })
        .collect();
    let mut lines: Vec<Line> = vec![("slow-start curve".to_owned(), curve)];
    lines.extend(
        result
            .runs
            .iter()
            .map(|run| (run.contender.to_owned(), run.share.clone())),
    );
    plot_lines(
        path,
        &format!(
            "ratings-{JOINING} joins 5× slower for {} s: its share of the answers per second",
            result.timing.warmup.as_secs()
        ),
        "share of answers",
        &lines,
    )
}

/// The report's section.
pub fn markdown(result: &SlowStartResult) -> String {
    let mut rows = String::new();
    for run in &result.runs {
        let ratio = run.joining.p99_ms / run.steady.p99_ms.max(f64::MIN_POSITIVE);
        let _ = writeln!(
            rows,
            "| {} | {:.1} | {:.1} ({ratio:.2}×) | {} | {:.0} |",
            run.contender,
            run.steady.p99_ms,
            run.joining.p99_ms,
            run.joining.errors,
            run.off_curve_points,
        );
    }
    let mut seconds = String::new();
    let slow_start = SlowStart::default().window(result.timing.warmup);
    for second in 0..result.timing.after.as_secs() {
        let at = second as f64;
        let curve = curve_share(&slow_start, Duration::from_secs_f64(at + 0.5));
        let _ = write!(seconds, "| {second} | {:.0} %", 100.0 * curve);
        for run in &result.runs {
            let share = run.share.iter().find(|(t, _)| (*t - at).abs() < 0.01);
            match share {
                Some((_, share)) => {
                    let _ = write!(seconds, " | {:.0} %", 100.0 * share);
                }
                None => seconds.push_str(" | –"),
            }
        }
        seconds.push_str(" |\n");
    }
    let names: String = result
        .runs
        .iter()
        .map(|run| format!(" {} |", run.contender))
        .collect();
    let rules = "---|".repeat(result.runs.len());
    format!(
        "## Slow start: an instance joins cold\n\n\
         Two `beacon-ratings` instances ({CAPACITY} answers at once, {WORK_MS} ms of work) carry \
         an open loop of {RATE} calls a second; {} s in, ratings-{JOINING} starts, five times \
         slower for its first {} s (`--warmup-ms`). Beacon with slow start (window {} s, \
         aggression 1.0, least weight 10 %) and without, one after the other. Targets while it \
         warms: 0 failed calls, p99 ≤ 1.2× the p99 before, its share within 10 points of the \
         curve's (w / (w + 2)). HAProxy's `slowstart` needs its health checks to see a server \
         go down and up; nginx's `slow_start` is commercial: neither runs here.\n\n\
         | caller | p99 before, ms | p99 while it warms, ms | failed while it warms | largest gap to the curve, points |\n\
         |---|---|---|---|---|\n{rows}\n\
         ![Its share of the answers against the slow-start curve](benchmarks/{PLOT})\n\n\
         Its share of the answers, second by second from its start:\n\n\
         | second | curve |{names}\n|---|---|{rules}\n{seconds}\n",
        result.timing.join_at.as_secs(),
        result.timing.warmup.as_secs(),
        result.timing.warmup.as_secs(),
    )
}
