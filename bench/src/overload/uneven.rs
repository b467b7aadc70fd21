//! "Uneven": one instance twice as costly per call as the others.
//!
//! Three `beacon-ratings` instances serve 4 answers at once each; ratings-1
//! works 10 ms on an answer, the others 5. A caller that splits calls
//! evenly overfills ratings-1 while the others idle; one that splits by
//! calls in flight alone (HAProxy's `leastconn`, nginx's `least_conn`)
//! does better; the aim is every instance equally full. An open loop
//! offers 70 % of what the three can give, for every contender in turn:
//! Beacon blending the instances' load reports into its latency-aware
//! choice, Beacon's latency-aware choice alone ("pure p2c"), HAProxy and
//! nginx.
//!
//! An instance's utilization is the answers a second it gave over what it
//! gives kept exactly full (measured first, each alone: a closed loop of 4
//! callers). Beacon believes an instance's reports only once it has
//! reported for 10 s (gRFC A58's blackout): each Beacon client is warmed
//! at a fifth of the load for that long before its run.

use super::{client, full, proxy_for, CAPACITY, WORK_MS};
use crate::{
    faults::put_settings,
    load::{closed_loop, open_loop, Route, Sample, Workload},
    stats::Summary,
    topology::Backends,
};
use std::{fmt::Write as _, time::Duration};

/// The costly instance's work per answer.
const COSTLY_WORK_MS: u64 = 2 * WORK_MS;
/// The offered load, as a share of what the instances can give.
const OFFERED: f64 = 0.7;
/// How long `make bench` warms a Beacon client before its run: past the
/// reports' blackout.
pub const WARM_FOR: Duration = Duration::from_secs(11);

/// One contender's run.
#[derive(Debug, Clone)]
pub struct UnevenRun {
    /// Who sent the calls.
    pub contender: &'static str,
    /// Its calls' latencies (failed ones at the time they failed).
    pub summary: Summary,
    /// Each instance's utilization (ratings-1, -2, -3): answers a second
    /// over its capacity.
    pub utilization: Vec<f64>,
}

impl UnevenRun {
    /// The spread of the instances' utilization, in points.
    pub fn spread_points(&self) -> f64 {
        let max = self.utilization.iter().copied().fold(f64::MIN, f64::max);
        let min = self.utilization.iter().copied().fold(f64::MAX, f64::min);
        100.0 * (max - min)
    }
}

/// What the scenario measured.
#[derive(Debug, Clone)]
pub struct Uneven {
    /// Each instance's answers a second, kept exactly full.
    pub capacities: Vec<f64>,
    /// The offered load, calls a second.
    pub rate: u32,
    /// Each contender's run.
    pub runs: Vec<UnevenRun>,
    /// How long each Beacon client was warmed first.
    pub warmed_for: Duration,
}

/// Runs every contender for `length`, each Beacon client warmed for
/// `warm_for` first (`make bench`: [`WARM_FOR`]).
pub async fn measure(length: Duration, warm_for: Duration) -> Result<Uneven, String> {
    let backends = Backends::start()?;
    let urls = backends.urls();
    for (i, url) in urls.iter().enumerate() {
        let work = if i == 0 { COSTLY_WORK_MS } else { WORK_MS };
        put_settings(url, &full(work)).await?;
    }
    let workload = Workload::camera;
    // Each instance kept exactly full, alone, all three at once.
    let probe = workload(length.min(Duration::from_secs(2)));
    let full = urls.iter().map(|url| {
        let route = Route::fixed(vec![url.clone()]);
        let probe = probe.clone();
        async move {
            let samples = closed_loop(&route, &probe, CAPACITY as usize).await;
            Summary::of(&samples, probe.duration).throughput
        }
    });
    let capacities = futures_util::future::join_all(full).await;
    let rate = (OFFERED * capacities.iter().sum::<f64>()) as u32;
    let registry = backends.registry_url();
    let run = workload(length);
    let mut runs = Vec::new();
    for (contender, load_reports) in [("beacon", true), ("beacon, pure p2c", false)] {
        eprintln!("    {contender}");
        let route = Route::Beacon(client(&registry, |b| b.load_reports(load_reports))?);
        open_loop(&route, &workload(warm_for), rate / 5, |_| async {}).await;
        let samples = open_loop(&route, &run, rate, |_| async {}).await;
        runs.push(judge(contender, &samples, length, &capacities));
    }
    for contender in ["haproxy, leastconn", "nginx, least_conn"] {
        eprintln!("    {contender}");
        let proxy = proxy_for(contender, &urls, None)?;
        let route = Route::proxy(proxy.url.clone());
        let samples = open_loop(&route, &run, rate, |_| async {}).await;
        runs.push(judge(contender, &samples, length, &capacities));
    }
    Ok(Uneven {
        capacities,
        rate,
        runs,
        warmed_for: warm_for,
    })
}

/// Each instance's utilization in `samples`, and their latencies.
fn judge(
    contender: &'static str,
    samples: &[Sample],
    length: Duration,
    capacities: &[f64],
) -> UnevenRun {
    let utilization = capacities
        .iter()
        .enumerate()
        .map(|(i, capacity)| {
            let name = format!("ratings-{}", i + 1);
            let answered = samples
                .iter()
                .filter(|s| s.ok && s.instance.as_deref() == Some(name.as_str()))
                .count();
            answered as f64 / length.as_secs_f64() / capacity.max(f64::MIN_POSITIVE)
        })
        .collect();
    UnevenRun {
        contender,
        summary: Summary::of(samples, length),
        utilization,
    }
}

/// The report's section.
pub fn markdown(measured: &Uneven) -> String {
    let pure_p99 = measured
        .runs
        .iter()
        .find(|r| r.contender == "beacon, pure p2c")
        .map_or(f64::NAN, |r| r.summary.p99_ms);
    let mut rows = String::new();
    for run in &measured.runs {
        let shares: Vec<String> = run
            .utilization
            .iter()
            .map(|u| format!("{:.0} %", 100.0 * u))
            .collect();
        let _ = writeln!(
            rows,
            "| {} | {} | {:.0} | {:.1} | {:.1} ({:.2}× pure p2c) | {} |",
            run.contender,
            shares.join(" / "),
            run.spread_points(),
            run.summary.p50_ms,
            run.summary.p99_ms,
            run.summary.p99_ms / pure_p99,
            run.summary.errors,
        );
    }
    let capacities: Vec<String> = measured
        .capacities
        .iter()
        .map(|c| format!("{c:.0}"))
        .collect();
    format!(
        "## Uneven: one instance twice as costly\n\n\
         Three `beacon-ratings` instances serving {CAPACITY} answers at once; ratings-1 works \
         {COSTLY_WORK_MS} ms on an answer, the others {WORK_MS} ms. Kept exactly full, alone, \
         they give {} answers a second. An open loop offers {:.0} % of their sum ({} a second). \
         Utilization: an instance's answers a second over that figure. Target: the instances \
         within 10 points of each other, and a p99 no worse than pure p2c's. Beacon's clients are \
         warmed at a fifth of the load for {} s first (the load reports count after a 10 s blackout).\n\n\
         | caller | utilization ratings-1 / -2 / -3 | spread, points | p50, ms | p99, ms | failed |\n\
         |---|---|---|---|---|---|\n{rows}\n",
        capacities.join(" / "),
        100.0 * OFFERED,
        measured.rate,
        measured.warmed_for.as_secs(),
    )
}
