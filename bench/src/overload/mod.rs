//! "Overload": instances that are full, not broken.
//!
//! Three `beacon-ratings` instances, each serving 4 answers at once with
//! 5 ms of work each (`capacity` and `delay_ms` faults; the rest queue in
//! the instance): 2,400 answers a second in all. An open loop offers 3×
//! that. A caller that sends everything queues it all and every answer
//! comes late; one that keeps each instance near its capacity gets nearly
//! all the capacity's answers, on time, and is told "no" at once for the
//! rest. Side by side: Beacon with no cap, with a fixed cap, with adaptive
//! limits; HAProxy with `maxconn` per server and a queue; nginx with
//! `max_conns` per server. Judged by goodput (answers per second, as a
//! share of the capacity), the p99 of answered calls against the unloaded
//! p99, how fast refusals come, and when the run settled.
//!
//! The capacity is measured, not taken from the settings: a closed loop of
//! exactly 4 callers per instance, straight to them. A 5 ms sleep takes
//! about 6 on tokio's millisecond timer, so the instances give about 80 %
//! of the 2,400 a second their settings promise; goodput is a share of
//! what they can give.
//!
//! Three more scenarios of instances that are full live beside it:
//! [`uneven`] (one instance twice as costly), [`slow_start`] (one joins
//! cold) and [`retry_storm`] (every instance sheds half its calls).

pub mod retry_storm;
pub mod slow_start;
pub mod uneven;

use crate::plots::{plot_lines, Line};
use crate::{
    faults::put_settings,
    load::{closed_loop, open_loop, Route, Sample, Workload},
    proxies::{Front, Proxy, QUEUE_TIMEOUT_MS},
    stats::{buckets, Summary},
    topology::Backends,
};
use beacon::client::{AdaptiveLimit, Attempts, Limits, ServiceClientBuilder};
use beacon::{RegistryClient, Resolver, ResolverConfig, ServiceClient};
use beacon_ratings_api::FaultSettings;
use futures_util::future::BoxFuture;
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

/// Answers each instance works on at once.
pub const CAPACITY: u32 = 4;
/// Each answer's work.
pub const WORK_MS: u64 = 5;
/// Instances.
pub const INSTANCES: u32 = 3;
/// The offered load, as a multiple of the capacity.
const OVERLOAD: u32 = 3;
/// Answers a second all the instances promise by their settings.
pub const NOMINAL_CAPACITY: u32 = INSTANCES * CAPACITY * 1000 / WORK_MS as u32;
/// The fixed cap of the "fixed cap" contender: capacity and as much again
/// queued.
const FIXED_CAP: u32 = 2 * CAPACITY;

/// One contender's run.
#[derive(Debug, Clone)]
pub struct OverloadRun {
    /// Who sent the calls.
    pub contender: &'static str,
    /// Answered calls, their latencies.
    pub answered: Summary,
    /// Answered calls of the run's second half (once it had time to
    /// settle), their latencies.
    pub second_half: Summary,
    /// Answers per second, as a share of the measured capacity.
    pub goodput: f64,
    /// Refused or failed calls: how many, and their 99th percentile time.
    pub refused: usize,
    /// 99th percentile time to a refusal, in milliseconds.
    pub refused_p99_ms: f64,
    /// The first second from which every second had goodput ≥ 90 % and a
    /// p99 ≤ 2× the unloaded p99; `None`: it never settled.
    pub settled_after_s: Option<f64>,
}

/// What the scenario measured.
#[derive(Debug, Clone)]
pub struct Overload {
    /// Answers a second the instances gave, each kept exactly full.
    pub capacity: f64,
    /// Beacon's defaults at a tenth of the capacity.
    pub unloaded: Summary,
    /// Each contender at 3× the capacity.
    pub runs: Vec<OverloadRun>,
    /// The proxies' configurations, by contender.
    pub configs: Vec<(&'static str, String)>,
    /// Each instance's learned limit over the adaptive run, sampled every
    /// 100 ms: (seconds into the run, limit), by instance.
    pub limits: Vec<Line>,
}

/// Runs the four scenarios of full instances (this one, for `length` at
/// 3× the capacity, and [`uneven`], [`slow_start`], [`retry_storm`]);
/// draws the adaptive limits over time into `dir`; gives the report's
/// sections.
pub async fn run(length: Duration, dir: &Path) -> Result<String, String> {
    let measured = measure(length).await?;
    plot_lines(
        &dir.join(LIMITS_PLOT),
        "Beacon's adaptive limit per instance (each serves 4 at once), offered 3× the capacity",
        "calls at once",
        &measured.limits,
    )?;
    eprintln!("  uneven");
    let uneven = uneven::markdown(&uneven::measure(length, uneven::WARM_FOR).await?);
    eprintln!("  slow start");
    let slow_start = slow_start::measure(slow_start::Timing::full()).await?;
    slow_start::plot(&slow_start, &dir.join(slow_start::PLOT))?;
    eprintln!("  retry storm");
    let storm = retry_storm::markdown(&retry_storm::measure(length, WORK_MS).await?);
    Ok(format!(
        "{}{uneven}{}{storm}",
        markdown(&measured),
        slow_start::markdown(&slow_start)
    ))
}

/// The faults that make an instance full: `work_ms` of work on each
/// answer, [`CAPACITY`] answers at once.
pub fn full(work_ms: u64) -> FaultSettings {
    FaultSettings {
        delay_ms: work_ms,
        capacity: CAPACITY,
        ..FaultSettings::default()
    }
}

/// Puts `settings` in force on every instance at `urls`.
pub async fn put_on_all(urls: &[String], settings: &FaultSettings) -> Result<(), String> {
    for url in urls {
        put_settings(url, settings).await?;
    }
    Ok(())
}

/// HAProxy in front of `urls` for a contender named `haproxy…`, nginx
/// otherwise; `per_server` as [`Proxy::haproxy`] takes it.
pub fn proxy_for(
    contender: &str,
    urls: &[String],
    per_server: Option<u32>,
) -> Result<Proxy, String> {
    if contender.starts_with("haproxy") {
        Proxy::haproxy(urls, &Front::Http1, per_server)
    } else {
        Proxy::nginx(urls, &Front::Http1, per_server)
    }
}

/// Where the plot of the adaptive limits goes, in the report's folder.
pub const LIMITS_PLOT: &str = "overload-limits.svg";

/// Beacon's client for `ratings` through the registry at `registry`,
/// attempts bounded like the proxies' tries (100 ms), as `configure`
/// sets it further.
pub fn client(
    registry: &str,
    configure: impl FnOnce(ServiceClientBuilder) -> ServiceClientBuilder,
) -> Result<ServiceClient, String> {
    client_of(&resolver(registry)?, configure)
}

/// A resolver through the registry at `registry`.
pub fn resolver(registry: &str) -> Result<Resolver, String> {
    Ok(Resolver::new(
        RegistryClient::from_list(registry, None).map_err(|e| e.to_string())?,
        ResolverConfig::default(),
    ))
}

/// [`client`] through `resolver` (whose events the caller may watch).
pub fn client_of(
    resolver: &Resolver,
    configure: impl FnOnce(ServiceClientBuilder) -> ServiceClientBuilder,
) -> Result<ServiceClient, String> {
    let builder = ServiceClient::builder(resolver, "ratings")
        .attempts(Attempts::default().timeout(Duration::from_millis(100)));
    configure(builder).build().map_err(|e| e.to_string())
}

/// What [`sample_instances`] saw: (seconds into the run, value), by
/// instance id.
pub type Seen = Arc<Mutex<BTreeMap<String, Vec<(f64, f64)>>>>;

/// Samples `client`'s view of its instances every 100 ms for `length`
/// from `start`, keeping what `read` takes of each (by instance id).
pub fn sample_instances(
    client: ServiceClient,
    length: Duration,
    read: fn(&beacon::InstanceSnapshot) -> Option<f64>,
) -> (Seen, impl FnOnce(Instant) -> BoxFuture<'static, ()>) {
    let seen = Seen::default();
    let into = Arc::clone(&seen);
    let during = move |start: Instant| -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while start.elapsed() < length {
                tick.tick().await;
                let at = start.elapsed().as_secs_f64();
                let snapshot = client.snapshot();
                let mut seen = into.lock().unwrap_or_else(PoisonError::into_inner);
                for instance in &snapshot.instances {
                    if let Some(value) = read(instance) {
                        seen.entry(instance.id.to_string())
                            .or_default()
                            .push((at, value));
                    }
                }
            }
        })
    };
    (seen, during)
}

/// Runs every contender for `length` at 3× the capacity.
pub async fn measure(length: Duration) -> Result<Overload, String> {
    let backends = Backends::start()?;
    let urls = backends.urls();
    put_on_all(&urls, &full(WORK_MS)).await?;
    let registry = backends.registry_url();
    let workload = Workload::camera(length);
    // What they can give: each kept exactly full, straight.
    let callers = (INSTANCES * CAPACITY) as usize;
    let full_loop = closed_loop(&Route::fixed(urls.clone()), &workload, callers).await;
    let capacity = Summary::of(&full_loop, length).throughput;
    // Unloaded: a tenth of the capacity, through Beacon's defaults.
    let unloaded = open_loop(
        &Route::Beacon(beacon(&registry, Limits::default(), true)?),
        &workload,
        (capacity / 10.0) as u32,
        |_| async {},
    )
    .await;
    let unloaded = Summary::of(&unloaded, length);
    let rate = (capacity * f64::from(OVERLOAD)) as u32;
    let run_of =
        |contender, samples: &[Sample]| judge(contender, samples, length, capacity, &unloaded);
    let mut runs = Vec::new();
    let mut configs = Vec::new();
    let adaptive = Limits::default().adaptive(Some(AdaptiveLimit::default()));
    let mut limits_seen = Vec::new();
    for (contender, limits, hedging) in [
        ("beacon, no cap", Limits::default(), true),
        (
            "beacon, fixed cap 8",
            Limits::default().max_in_flight(Some(FIXED_CAP)),
            true,
        ),
        ("beacon, adaptive", adaptive, true),
        ("beacon, adaptive, no hedging", adaptive, false),
    ] {
        eprintln!("  {contender}");
        let client = beacon(&registry, limits, hedging)?;
        let (seen, during) =
            sample_instances(client.clone(), length, |i| Some(f64::from(i.learned_limit)));
        let samples = open_loop(&Route::Beacon(client), &workload, rate, during).await;
        if contender == "beacon, adaptive" {
            let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            limits_seen = seen
                .iter()
                .map(|(id, points)| (id.clone(), points.clone()))
                .collect();
        }
        runs.push(run_of(contender, &samples));
    }
    for contender in ["haproxy, maxconn 4 + queue", "nginx, max_conns 4"] {
        eprintln!("  {contender}");
        let proxy = proxy_for(contender, &urls, Some(CAPACITY))?;
        let samples = open_loop(
            &Route::proxy(proxy.url.clone()),
            &workload,
            rate,
            |_| async {},
        )
        .await;
        runs.push(run_of(contender, &samples));
        configs.push((contender, proxy.config.clone()));
    }
    Ok(Overload {
        capacity,
        unloaded,
        runs,
        configs,
        limits: limits_seen,
    })
}

/// Beacon's client with `limits`, hedging (its default) or not.
fn beacon(registry: &str, limits: Limits, hedging: bool) -> Result<ServiceClient, String> {
    client(registry, |builder| {
        let builder = builder.limits(limits);
        if hedging {
            builder
        } else {
            builder.hedging(None)
        }
    })
}

/// What `samples` of a run of `length` say, against the `capacity`
/// (answers a second) and the `unloaded` run.
pub fn judge(
    contender: &'static str,
    samples: &[Sample],
    length: Duration,
    capacity: f64,
    unloaded: &Summary,
) -> OverloadRun {
    let answered = Summary::of(samples, length);
    let half = length / 2;
    let later: Vec<Sample> = samples.iter().filter(|s| s.at >= half).cloned().collect();
    let second_half = Summary::of(&later, length - half);
    let mut refusals: Vec<f64> = samples
        .iter()
        .filter(|s| !s.ok)
        .map(|s| s.latency.as_secs_f64() * 1000.0)
        .collect();
    refusals.sort_by(f64::total_cmp);
    let refused_p99_ms = refusals
        .get(((refusals.len().max(1) - 1) as f64 * 0.99).round() as usize)
        .copied()
        .unwrap_or(0.0);
    let second = Duration::from_secs(1);
    let good = |b: &crate::stats::Bucket| {
        let answers = (b.requests - b.errors) as f64;
        answers >= 0.9 * capacity && b.p99_ms <= 2.0 * unloaded.p99_ms
    };
    let slices = buckets(
        &samples.iter().filter(|s| s.ok).cloned().collect::<Vec<_>>(),
        second,
        length,
    );
    // The last slice is cut short by the end of the run: not judged.
    let judged = &slices[..slices.len().saturating_sub(1)];
    let settled_after_s = (0..judged.len())
        .find(|&i| judged[i..].iter().all(good))
        .map(|i| judged[i].at_s);
    OverloadRun {
        contender,
        goodput: answered.throughput / capacity,
        answered,
        second_half,
        refused: refusals.len(),
        refused_p99_ms,
        settled_after_s,
    }
}

/// The report's section.
pub fn markdown(measured: &Overload) -> String {
    let Overload {
        capacity,
        unloaded,
        runs,
        configs,
        limits: _,
    } = measured;
    let mut rows = String::new();
    for run in runs {
        let half = &run.second_half;
        let second_half = if half.requests > half.errors {
            format!(
                "{:.1} ({:.2}×)",
                half.p99_ms,
                half.p99_ms / unloaded.p99_ms.max(f64::MIN_POSITIVE)
            )
        } else {
            "none answered".to_owned()
        };
        let settled = run
            .settled_after_s
            .map_or("never".to_owned(), |s| format!("{s:.0} s"));
        let _ = writeln!(
            rows,
            "| {} | {:.0} % | {:.1} | {:.1} ({:.2}×) | {second_half} | {} | {:.1} | {settled} |",
            run.contender,
            100.0 * run.goodput,
            run.answered.p50_ms,
            run.answered.p99_ms,
            run.answered.p99_ms / unloaded.p99_ms.max(f64::MIN_POSITIVE),
            run.refused,
            run.refused_p99_ms,
        );
    }
    let mut proxies = String::new();
    for (name, config) in configs {
        let _ = write!(
            proxies,
            "<details><summary>{name}</summary>\n\n```\n{config}```\n</details>\n\n"
        );
    }
    format!(
        "## Overload: instances that are full, not broken\n\n\
         Three `beacon-ratings` instances each serving {CAPACITY} answers at once with \
         {WORK_MS} ms of work (the `capacity` and `delay_ms` faults; more queue in the instance): \
         {NOMINAL_CAPACITY} answers a second in all by the settings, {capacity:.0} measured \
         (each kept exactly full, straight; tokio's timer makes 5 ms about 6). An open loop \
         offers {OVERLOAD}× the measured capacity ({:.0} a second); a caller waits 1 s at most. Unloaded (a tenth of the capacity): \
         p50 {:.1} ms, p99 {:.1} ms. Goodput: answers a second as a share of the capacity. \
         Settled: the first second from which every second had ≥ 90 % goodput and a p99 \
         ≤ 2× the unloaded p99. HAProxy queues for at most {QUEUE_TIMEOUT_MS} ms.\n\n\
         | caller | goodput | p50 answered, ms | p99 answered, ms (× unloaded) | p99 answered, second half | refused or failed | p99 to a refusal, ms | settled after |\n\
         |---|---|---|---|---|---|---|---|\n{rows}\n\
         ![Beacon's adaptive limit per instance over the run](benchmarks/{LIMITS_PLOT})\n\n{proxies}",
        capacity * f64::from(OVERLOAD),
        unloaded.p50_ms,
        unloaded.p99_ms,
    )
}
