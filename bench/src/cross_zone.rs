//! "Cross-zone": the share of calls that leave the caller's zone.
//!
//! Four `beacon-ratings` instances, two registered in zone a and two in
//! zone b, and a caller in zone a. Beacon without a zone (`ClientConfig`'s
//! default) spreads calls over all four; with `zone: "a"` it keeps them in
//! a while a is healthy, spills half when one of a's two instances is
//! stopped (half of a is healthy), and crosses only then. Counted by the
//! instances themselves (`/_metrics`).

use crate::{
    faults::served,
    load::{closed_loop, Route, Workload},
    topology::Backends,
};
use beacon::{ClientConfig, RegistryClient, Resolver, ResolverConfig, ServiceClient};
use std::time::Duration;

/// The zone of each instance, by number (instance 1 is in a).
const ZONES: [&str; 4] = ["a", "a", "b", "b"];
/// Callers sending at once.
const CALLERS: usize = 8;

/// One run's result.
#[derive(Debug, Clone)]
pub struct ZoneRun {
    /// What the caller was and what was wrong.
    pub case: &'static str,
    /// Calls the instances answered.
    pub calls: u64,
    /// Of those, answered in zone b.
    pub cross_zone: u64,
    /// Calls that failed at the caller.
    pub errors: usize,
}

/// Runs zone-blind and zone-aware callers, healthy and with one of zone
/// a's instances stopped, for `length` each; gives the report's section.
pub async fn run(length: Duration) -> Result<String, String> {
    let mut backends = Backends::in_zones(&ZONES)?;
    let registry = backends.registry_url();
    let urls = backends.urls();
    let mut runs = Vec::new();
    for (case, zone, stopped) in [
        ("no zone, all healthy", None, false),
        ("zone a, all healthy", Some("a"), false),
        ("zone a, one of a's two stopped", Some("a"), true),
    ] {
        if stopped {
            backends.signal(1, "STOP")?;
        }
        let run = one_run(&registry, &urls, zone, length).await?;
        runs.push(ZoneRun { case, ..run });
    }
    backends.heal()?;
    Ok(markdown(&runs))
}

async fn one_run(
    registry: &str,
    urls: &[String],
    zone: Option<&str>,
    length: Duration,
) -> Result<ZoneRun, String> {
    let resolver = Resolver::new(
        RegistryClient::from_list(registry, None).map_err(|e| e.to_string())?,
        ResolverConfig::default(),
    );
    let config = ClientConfig {
        zone: zone.map(str::to_owned),
        attempt_timeout: Duration::from_millis(100),
        ..ClientConfig::default()
    };
    let service = "ratings".parse().map_err(|e| format!("{e}"))?;
    let client = ServiceClient::new(&resolver, &service, config);
    let route = Route::Beacon(client);
    let workload = Workload {
        path: "/ratings/camera".to_owned(),
        timeout: Duration::from_secs(2),
        duration: length,
    };
    let before = served(urls).await;
    let samples = closed_loop(&route, &workload, CALLERS).await;
    let after = served(urls).await;
    let taken: Vec<u64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| a.unwrap_or_default().saturating_sub(b.unwrap_or_default()))
        .collect();
    let in_zone = |zone: &str| -> u64 {
        taken
            .iter()
            .zip(ZONES)
            .filter(|(_, z)| *z == zone)
            .map(|(n, _)| *n)
            .sum()
    };
    Ok(ZoneRun {
        case: "",
        calls: in_zone("a") + in_zone("b"),
        cross_zone: in_zone("b"),
        errors: samples.iter().filter(|s| !s.ok).count(),
    })
}

/// The report's section.
pub fn markdown(runs: &[ZoneRun]) -> String {
    let share = |run: &ZoneRun| {
        // Counts of calls: exact as f64.
        run.cross_zone as f64 / (run.calls.max(1)) as f64
    };
    let rows: String = runs
        .iter()
        .map(|run| {
            format!(
                "| {} | {} | {} ({:.1} %) | {} |\n",
                run.case,
                run.calls,
                run.cross_zone,
                100.0 * share(run),
                run.errors
            )
        })
        .collect();
    let ratio = match runs {
        [blind, aware, ..] => format!("{:.3}", share(aware) / share(blind).max(f64::MIN_POSITIVE)),
        _ => "–".to_owned(),
    };
    format!(
        "## Cross-zone calls\n\n\
         Four `beacon-ratings` instances, two registered in zone a and two in zone b \
         (`--zone`), and a Beacon caller in zone a, closed loop with {CALLERS} callers. \
         Counted by the instances.\n\n\
         | caller | calls | answered in zone b | caller errors |\n\
         |---|---|---|---|\n{rows}\n\
         Cross-zone share, zone-aware / zone-blind (all healthy): **{ratio}**.\n\n"
    )
}
