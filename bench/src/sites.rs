//! "Sites": a whole site's ratings stop, and come back.
//!
//! Two sites, each a registry (`--dc a`, `--dc b`) and three
//! `beacon-ratings` instances (ratings-1..3 in a, ratings-4..6 in b). A
//! Beacon client of site a, told of site b's registry
//! (`ServiceClientBuilder::remote_site`), takes an open loop. A few seconds
//! in, every instance of site a is paused (SIGSTOP: running, silent —
//! harder than a clean stop, which deregisters); a few seconds later they
//! resume. Judged against the targets: calls that failed (0), how
//! soon nearly every answer came from site b (≤ 1 s), how soon nearly
//! every answer came from home again after the resume (≤ 2 s), and the
//! share that crossed while home was healthy (≤ 1 %).

use crate::{
    load::{open_loop, Route, Sample, Workload},
    overload::{client_of, resolver},
    scenarios::with,
    stats::{buckets, Bucket},
    topology::Backends,
};
use std::{
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::Duration,
};

/// Calls a second.
const RATE: u32 = 500;
/// A slice "nearly all" from one site: this share of its answers.
const NEARLY_ALL: f64 = 0.99;
/// Slices the timeline is judged in.
const SLICE: Duration = Duration::from_millis(100);

/// When the home site stops and resumes, from the start of the run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Home's instances are paused.
    pub stop_at: Duration,
    /// They resume.
    pub resume_at: Duration,
    /// The run ends.
    pub length: Duration,
}

impl Timing {
    /// `make bench`'s: paused at 4 s for 5 s, watched 5 s more.
    pub fn full() -> Self {
        Self {
            stop_at: Duration::from_secs(4),
            resume_at: Duration::from_secs(9),
            length: Duration::from_secs(14),
        }
    }
}

/// What the run measured.
#[derive(Debug, Clone)]
pub struct SitesRun {
    /// When it stopped and resumed.
    pub timing: Timing,
    /// Calls made.
    pub calls: usize,
    /// Calls that failed (no right answer within 1 s).
    pub failed: usize,
    /// Share of the answers site b gave while home was healthy.
    pub crossed_while_healthy: f64,
    /// From the stop to the first slice from which every slice until the
    /// resume had nearly all its answers from site b; `None`: never.
    pub failover: Option<Duration>,
    /// From the resume to the first slice from which every slice to the
    /// end had nearly all its answers from home; `None`: never.
    pub back_home: Option<Duration>,
}

/// Runs the scenario as `timing` says.
pub async fn measure(timing: Timing) -> Result<SitesRun, String> {
    let home = Arc::new(Mutex::new(Backends::site("a", 1)?));
    let away = Backends::site("b", 4)?;
    let (home_registry, away_registry) = (with(&home, |b| b.registry_url()), away.registry_url());
    let there = resolver(&away_registry)?;
    let client = client_of(&resolver(&home_registry)?, |builder| {
        builder.site("a").remote_site("b", &there)
    })?;
    let route = Route::Beacon(client);
    let workload = Workload::camera(timing.length);
    // Connections open and both sites listed before the run.
    let warm = Workload::camera(Duration::from_secs(1));
    open_loop(&route, &warm, RATE, |_| async {}).await;
    let faults = Arc::clone(&home);
    let samples = open_loop(&route, &workload, RATE, move |start| async move {
        for (at, signal) in [(timing.stop_at, "STOP"), (timing.resume_at, "CONT")] {
            tokio::time::sleep_until(start + at).await;
            let faults = Arc::clone(&faults);
            let _ = tokio::task::spawn_blocking(move || {
                with(&faults, |home| {
                    for n in 1..=3 {
                        if let Err(e) = home.signal(n, signal) {
                            eprintln!("SIG{signal} ratings-{n}: {e}");
                        }
                    }
                })
            })
            .await;
        }
    })
    .await;
    drop(away);
    Ok(judge(&samples, timing))
}

/// Whether `instance` is one of site b's (ratings-4..6).
fn in_site_b(instance: &str) -> bool {
    matches!(instance, "ratings-4" | "ratings-5" | "ratings-6")
}

/// What `samples` say.
fn judge(samples: &[Sample], timing: Timing) -> SitesRun {
    let answered_from = |slice: &Bucket| {
        let all: usize = slice.served.values().sum();
        let away: usize = slice
            .served
            .iter()
            .filter(|(instance, _)| in_site_b(instance))
            .map(|(_, n)| n)
            .sum();
        (all, away)
    };
    let slices = buckets(samples, SLICE, timing.length);
    let (mut healthy_all, mut healthy_away) = (0, 0);
    for slice in slices
        .iter()
        .filter(|s| s.at_s < timing.stop_at.as_secs_f64())
    {
        let (all, away) = answered_from(slice);
        healthy_all += all;
        healthy_away += away;
    }
    let share_away = |slice: &Bucket| {
        let (all, away) = answered_from(slice);
        (all > 0).then(|| away as f64 / all as f64)
    };
    let (stop, resume) = (timing.stop_at, timing.resume_at);
    let end = timing.length - SLICE;
    let failover = settled(
        &slices,
        stop,
        resume,
        |away| away >= NEARLY_ALL,
        &share_away,
    );
    let back_home = settled(
        &slices,
        resume,
        end,
        |away| away <= 1.0 - NEARLY_ALL,
        &share_away,
    );
    SitesRun {
        timing,
        calls: samples.len(),
        failed: samples.iter().filter(|s| !s.ok).count(),
        crossed_while_healthy: healthy_away as f64 / healthy_all.max(1) as f64,
        failover,
        back_home,
    }
}

/// From `from` to the first slice before `until` from which every slice
/// up to `until` had a share of answers from site b that `holds` (or no
/// answers); `None`: never.
fn settled(
    slices: &[Bucket],
    from: Duration,
    until: Duration,
    holds: impl Fn(f64) -> bool,
    share_away: &dyn Fn(&Bucket) -> Option<f64>,
) -> Option<Duration> {
    let (from, until) = (from.as_secs_f64(), until.as_secs_f64());
    let within: Vec<&Bucket> = slices
        .iter()
        .filter(|s| s.at_s >= from && s.at_s < until)
        .collect();
    (0..within.len())
        .find(|&i| within[i..].iter().all(|s| share_away(s).is_none_or(&holds)))
        .map(|i| Duration::from_secs_f64(within[i].at_s - from))
}

/// The report's section.
pub fn markdown(run: &SitesRun) -> String {
    let seconds =
        |d: Option<Duration>| d.map_or("never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| beacon, remote site b | {} | {} | {:.2} % | {} | {} |",
        run.calls,
        run.failed,
        100.0 * run.crossed_while_healthy,
        seconds(run.failover),
        seconds(run.back_home),
    );
    format!(
        "## Sites: a whole site's ratings stop\n\n\
         Two sites, each a registry (`--dc a`, `--dc b`) and three `beacon-ratings` instances. \
         A Beacon client of site a, told of site b's registry, takes an open loop of {RATE} calls \
         a second; at {} s every instance of site a is paused (SIGSTOP: silent, still \
         registered), at {} s they resume. Failover: from the pause to the first 100 ms from \
         which nearly all ({:.0} %) answers came from site b; back home: the same from the \
         resume, for site a. Targets: 0 failed calls, failover ≤ 1 s, back home ≤ 2 s, ≤ 1 % \
         crossing while site a is healthy.\n\n\
         | caller | calls | failed | crossed while healthy | failover | back home |\n\
         |---|---|---|---|---|---|\n{table}\n",
        run.timing.stop_at.as_secs(),
        run.timing.resume_at.as_secs(),
        100.0 * NEARLY_ALL,
    )
}
