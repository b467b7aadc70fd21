//! "Retry storm": every instance sheds about half its calls.
//!
//! Three `beacon-ratings` instances serve 4 answers at once (5 ms of work)
//! and shed what comes past that (`--max-in-flight 4`: 503 `overloaded`
//! with `Retry-After`). An open loop offers twice what they can give, so
//! each sheds about half. A caller that retries every refusal multiplies
//! the load on instances that are full already — a retry storm; one that
//! opens breakers on refusals takes full instances out, and the rest get
//! their load. Beacon takes a refusal as "busy": tried elsewhere within its
//! retry budget (a fifth of its calls, plus 10 a second), and no breaker
//! is told. HAProxy (`retry-on all-retryable-errors`, which includes 503,
//! and `observe layer7` marking a server down on errors) and nginx
//! (`proxy_next_upstream … http_503`, 3 tries) as their docs advise for
//! fast failover.
//!
//! Judged: attempts the instances received (their own count) over the
//! calls offered — target ≤ 1.2×, no amplification — and, for Beacon,
//! breakers opened (target 0).

use super::{client_of, full, proxy_for, put_on_all, resolver, CAPACITY, INSTANCES};
use crate::{
    faults::served,
    load::{open_loop, Route, Workload},
    stats::Summary,
    topology::Backends,
};
use beacon::client::{AdaptiveLimit, Limits};
use beacon::EventKind;
use std::{fmt::Write as _, time::Duration};

/// The offered load, as a multiple of what the instances' settings
/// promise (about 80 % of which they give: twice what they can give is
/// about 1.6× this).
const OFFERED: f64 = 1.6;

/// What the scenario measured.
#[derive(Debug, Clone)]
pub struct Storm {
    /// Each answer's work, in milliseconds.
    pub work_ms: u64,
    /// The offered load, calls a second.
    pub rate: u32,
    /// Each contender's run.
    pub runs: Vec<StormRun>,
}

/// One contender's run.
#[derive(Debug, Clone)]
pub struct StormRun {
    /// Who sent the calls.
    pub contender: &'static str,
    /// Calls offered, and how they went.
    pub summary: Summary,
    /// Attempts the instances received (served or shed).
    pub received: u64,
    /// Breakers the caller opened (`None`: it has none to count).
    pub breakers_opened: Option<usize>,
}

impl StormRun {
    /// Attempts received per call offered.
    pub fn amplification(&self) -> f64 {
        self.received as f64 / (self.summary.requests.max(1)) as f64
    }
}

/// Runs every contender for `length`, each answer `work_ms` of work
/// (`make bench`: [`WORK_MS`](super::WORK_MS); a test on debug binaries takes longer
/// answers, so that fewer calls make them full and timeouts of a busy
/// machine don't open breakers).
pub async fn measure(length: Duration, work_ms: u64) -> Result<Storm, String> {
    let limit = CAPACITY.to_string();
    let backends = Backends::start_with(&["--max-in-flight", &limit])?;
    let urls = backends.urls();
    put_on_all(&urls, &full(work_ms)).await?;
    let registry = backends.registry_url();
    let workload = Workload::camera(length);
    let promised = f64::from(INSTANCES * CAPACITY) * 1000.0 / work_ms.max(1) as f64;
    let rate = (OFFERED * promised) as u32;
    let adaptive = Limits::default().adaptive(Some(AdaptiveLimit::default()));
    let mut runs = Vec::new();
    for (contender, limits) in [
        ("beacon", Limits::default()),
        ("beacon, adaptive", adaptive),
    ] {
        eprintln!("    {contender}");
        let resolver = resolver(&registry)?;
        let mut events = resolver.subscribe();
        let route = Route::Beacon(client_of(&resolver, |b| b.limits(limits))?);
        let before = served(&urls).await;
        let samples = open_loop(&route, &workload, rate, |_| async {}).await;
        let received = received_since(&before, &served(&urls).await);
        let mut opened = 0;
        while let Ok(event) = events.try_recv() {
            if matches!(event.kind, EventKind::BreakerOpened { .. }) {
                opened += 1;
            }
        }
        runs.push(StormRun {
            contender,
            summary: Summary::of(&samples, length),
            received,
            breakers_opened: Some(opened),
        });
    }
    for contender in ["haproxy, retry-on 503", "nginx, next_upstream http_503"] {
        eprintln!("    {contender}");
        let proxy = proxy_for(contender, &urls, None)?;
        let route = Route::proxy(proxy.url.clone());
        let before = served(&urls).await;
        let samples = open_loop(&route, &workload, rate, |_| async {}).await;
        runs.push(StormRun {
            contender,
            summary: Summary::of(&samples, length),
            received: received_since(&before, &served(&urls).await),
            breakers_opened: None,
        });
    }
    Ok(Storm {
        work_ms,
        rate,
        runs,
    })
}

/// Attempts the instances took between two readings.
fn received_since(before: &[Option<u64>], after: &[Option<u64>]) -> u64 {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| a.unwrap_or(0).saturating_sub(b.unwrap_or(0)))
        .sum()
}

/// The report's section.
pub fn markdown(storm: &Storm) -> String {
    let mut rows = String::new();
    for run in &storm.runs {
        let opened = run
            .breakers_opened
            .map_or("–".to_owned(), |n| n.to_string());
        let _ = writeln!(
            rows,
            "| {} | {} | {} | {:.2}× | {:.0} | {} | {opened} |",
            run.contender,
            run.summary.requests,
            run.received,
            run.amplification(),
            run.summary.throughput,
            run.summary.errors,
        );
    }
    format!(
        "## Retry storm: every instance sheds half\n\n\
         Three `beacon-ratings` instances serving {CAPACITY} answers at once ({} ms of \
         work) shed what comes past that (`--max-in-flight {CAPACITY}`: 503 `overloaded`, \
         `Retry-After: 1`). An open loop offers {} calls a second, about twice what they \
         give. Attempts received: the instances' own count, served or shed. Targets: at most \
         1.2 attempts per call offered, and no breaker opened by a refusal.\n\n\
         | caller | calls offered | attempts received | per call | answers a second | failed | breakers opened |\n\
         |---|---|---|---|---|---|---|\n{rows}\n",
        storm.work_ms,
        storm.rate,
    )
}
