//! A fleet: many instances in one service, many watchers of it, a change a
//! second. Watchers follow the changes feed (what the library's resolver
//! does) or long-poll the whole list (what it did before, and what old
//! clients do); the registry's CPU, the bytes each watcher gets per change
//! and the time from a change to its last watcher are measured side by
//! side, and every watcher is checked to have seen every change. The same
//! fleet on etcd's gRPC watch stands beside them (`fleet_etcd`).

use super::fleet_watch::{follow_service, get, Follow};
use super::table::{quantile, Table};
use super::{id, name};
use beacon::{
    net::http::{http2_client, http_client, HttpClient},
    net::tls::default_config,
    wire::ServiceChanges,
};
use beacon::{wire::Registration, RegistryClient};
use beacon_kit::process::Service;
use serde::Serialize;
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{sync::watch, time::Instant};

/// A column of the fleet table, each way of the registry's beside etcd's
/// like it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
    /// The registry's changes feed as one long answer, a connection per
    /// watcher.
    Stream,
    /// etcd: a gRPC watch stream on the keys' prefix, a connection per
    /// watcher.
    EtcdEach,
    /// The registry's stream over shared HTTP/2 connections.
    StreamShared,
    /// etcd's watch streams over as many shared connections.
    Etcd,
    /// The registry's changes feed long-polled, a connection per watcher.
    Changes,
    /// The registry's whole list.
    Lists,
}

impl From<Follow> for Column {
    fn from(follow: Follow) -> Self {
        match follow {
            Follow::Stream => Self::Stream,
            Follow::StreamShared => Self::StreamShared,
            Follow::Changes => Self::Changes,
            Follow::Lists => Self::Lists,
        }
    }
}

/// How many connections the watchers share where they share them (etcd's
/// watch streams, the registry's stream over HTTP/2).
pub(super) const SHARED_CONNECTIONS: usize = 10;

/// The rows, named once for every column.
pub(super) const CPU_ROW: &str = "server CPU (registry; etcd), % of a core";
pub(super) const BYTES_ROW: &str = "bytes per change per watcher";
pub(super) const P50_ROW: &str = "change → last watcher, p50";
pub(super) const MAX_ROW: &str = "change → last watcher, max";

/// The fleet section's figures.
#[derive(Debug, Clone, Serialize, Default)]
pub struct FleetResults {
    /// Each figure: the feed streamed a connection each, streamed over
    /// shared HTTP/2 connections, long-polled, the whole list, etcd.
    pub table: Table,
    /// Instances, watchers per way, changes per run: for the heading.
    pub shape: Option<(usize, usize, usize, usize)>,
}

impl FleetResults {
    pub(super) fn record(&mut self, what: &str, unit: &'static str, column: Column, value: f64) {
        self.table.record(what, unit, column as usize, value);
    }

    /// A markdown section.
    pub fn markdown(&self) -> String {
        let Some((instances, changes_watchers, list_watchers, changes)) = self.shape else {
            return String::new();
        };
        let mut md = format!(
            "\n## A fleet: changes, not lists\n\n{instances} instances in one service on the \
             registry (memory store), {changes} changes a second apart (an instance joins); \
             {changes_watchers} watchers on the changes feed, as the library's resolver follows \
             a service, beside {list_watchers} long-polling the whole list, as it did before and \
             as old clients do (fewer: at this size each list answer costs the registry \
             milliseconds). Registry CPU is its process's user and system time over the \
             changes, as a share of one core; bytes are the answers' bodies after each \
             watcher's first sync; propagation is from a change's write answered to the last \
             watcher that got it. Every watcher is checked to have seen every change. The \
             feed is followed three ways: as one long answer (`stream=true`, a line per \
             change) over HTTP/1.1, a connection per watcher, as separate processes would; \
             the same over HTTP/2, the watchers sharing {SHARED_CONNECTIONS} connections, as \
             the anchor's do; and long-polled (`index=N&wait=60s`, a request per change), a \
             connection each. The anchor: etcd with as many keys under one prefix, \
             {changes_watchers} gRPC watch streams on it, a connection each and then over \
             {SHARED_CONNECTIONS} connections, each beside the registry's like it, the same \
             changes (a key put); its bytes are each event's key and value (framing not \
             counted). Medians of the runs, range in brackets.\n\n\
             | figure | changes stream (a connection each) | etcd gRPC watch (a \
             connection each) | changes stream (HTTP/2, {SHARED_CONNECTIONS} connections) | \
             etcd gRPC watch ({SHARED_CONNECTIONS} connections) | changes long-poll (a \
             connection each) | whole list |\n|---|---|---|---|---|---|---|\n"
        );
        self.table.write_rows(&mut md, 6);
        md
    }
}

/// Sizes of the fleet measurement.
#[derive(Debug, Clone, Copy)]
pub struct FleetSizes {
    /// Instances in the service.
    pub instances: usize,
    /// Watchers on the changes feed.
    pub changes_watchers: usize,
    /// Watchers long-polling the list.
    pub list_watchers: usize,
    /// Changes made, a second apart.
    pub changes: usize,
}

/// What the fleet measurement works on: the registry process, a client of
/// it, and what each instance registers.
#[derive(Debug)]
pub struct Fleet<'a> {
    /// The registry's client.
    pub client: &'a RegistryClient,
    /// The registry process.
    pub registry: &'a Service,
    /// What each instance registers.
    pub registration: &'a Registration,
    /// etcd, for the anchor's column.
    pub etcd: &'a super::etcd::Etcd,
}

/// Starts a registry from `binary` and measures a fleet of `sizes` on it
/// once (what `make test` runs at a small size).
pub async fn run(
    binary: &std::path::Path,
    sizes: FleetSizes,
) -> Result<(FleetResults, Vec<String>), String> {
    let (registry, client) = super::start_registry(binary)?;
    let registration = Registration {
        ttl: Duration::from_secs(3600),
        ..Registration::new(
            beacon::wire::Address::new("http://127.0.0.1:9000").map_err(|e| e.to_string())?,
        )
    };
    let etcd = super::etcd::Etcd::start().await?;
    let fleet = Fleet {
        client: &client,
        registry: &registry,
        registration: &registration,
        etcd: &etcd,
    };
    let (mut results, mut failed) = (FleetResults::default(), Vec::new());
    measure(&fleet, sizes, &mut results, &mut failed).await?;
    Ok((results, failed))
}

/// Measures both ways of following, on the service `fleet-<run>`.
pub(super) async fn measure(
    subjects: &Fleet<'_>,
    sizes: FleetSizes,
    results: &mut FleetResults,
    failed: &mut Vec<String>,
) -> Result<(), String> {
    results.shape = Some((
        sizes.instances,
        sizes.changes_watchers,
        sizes.list_watchers,
        sizes.changes,
    ));
    for (follow, watchers) in [
        (Follow::Stream, sizes.changes_watchers),
        (Follow::StreamShared, sizes.changes_watchers),
        (Follow::Changes, sizes.changes_watchers),
        (Follow::Lists, sizes.list_watchers),
    ] {
        let service = name(&format!("fleet-{}", follow as u8))?;
        let registered = super::register_many(
            subjects.client,
            &service,
            sizes.instances,
            subjects.registration,
        )
        .await;
        if registered.failed > 0 {
            failed.push(format!("fleet: {} registrations failed", registered.failed));
        }
        once(subjects, &service, follow, watchers, sizes, results, failed).await?;
    }
    super::fleet_etcd::measure(subjects.etcd, sizes, results, failed).await
}

async fn once(
    subjects: &Fleet<'_>,
    service: &beacon::wire::ServiceName,
    follow: Follow,
    watchers: usize,
    sizes: FleetSizes,
    results: &mut FleetResults,
    failed: &mut Vec<String>,
) -> Result<(), String> {
    let http = http_client(Duration::from_secs(10));
    // Each HTTP/2 client holds one connection to the registry; none are
    // made for the ways that don't share.
    let shared: Vec<HttpClient> = match follow {
        Follow::StreamShared => (0..SHARED_CONNECTIONS)
            .map(|_| http2_client(Duration::from_secs(10), default_config()))
            .collect(),
        Follow::Stream | Follow::Changes | Follow::Lists => Vec::new(),
    };
    let base = subjects.registry.url.clone();
    let (stop_tx, stop) = watch::channel(false);
    // Each watcher's latest index (0 before its first answer): a stream's
    // line may still be on its way when the registry parks again.
    let latest: Vec<Arc<AtomicU64>> = (0..watchers).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = (0..watchers)
        .map(|w| {
            let http = match follow {
                Follow::StreamShared => shared[w % SHARED_CONNECTIONS].clone(),
                Follow::Stream | Follow::Changes | Follow::Lists => http.clone(),
            };
            let stop = stop.clone();
            let url = match follow {
                Follow::Stream | Follow::StreamShared | Follow::Changes => {
                    format!("{base}/v1/services/{service}/changes")
                }
                Follow::Lists => format!("{base}/v1/services/{service}"),
            };
            let latest = Arc::clone(&latest[w]);
            tokio::spawn(follow_service(http, url, follow, latest, stop))
        })
        .collect();
    // Every watcher synced and parked before the first change.
    let parked_url = format!("{base}/_metrics");
    let waiting = Instant::now();
    while parked(&parked_url).await < watchers || !all_past(&latest, 0) {
        if waiting.elapsed() > Duration::from_secs(120) {
            return Err(format!("fleet: not all {watchers} watchers parked"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut index = index_after(&http, &base, service, None).await?;
    let pid = subjects.registry.pid();
    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut written = Vec::with_capacity(sizes.changes);
    for k in 0..sizes.changes {
        let at = started + Duration::from_secs(k as u64);
        tokio::time::sleep_until(at).await;
        subjects
            .client
            .register(service, &id(sizes.instances + k), subjects.registration)
            .await
            .map_err(|e| e.to_string())?;
        let answered = Instant::now();
        index = index_after(&http, &base, service, Some(index)).await?;
        written.push((answered, index));
    }
    // Let the last change reach everyone (bounded), then stop.
    let last = written.last().map_or(0, |w| w.1);
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(30)
        && (parked(&parked_url).await < watchers || !all_past(&latest, last.saturating_sub(1)))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (cpu, seen) = stop_watchers(pid, cpu_before, started, &stop_tx, tasks).await?;
    // Checks: every watcher saw every change.
    let expected: Vec<String> = (0..sizes.changes)
        .map(|k| id(sizes.instances + k).to_string())
        .collect();
    let mut propagation = Vec::new();
    for (k, (at, index)) in written.iter().enumerate() {
        let last_seen = seen
            .iter()
            .filter_map(|s| s.answers.iter().find(|(_, i)| i >= index).map(|(t, _)| *t))
            .max();
        let everyone = seen
            .iter()
            .all(|s| s.answers.iter().any(|(_, i)| i >= index));
        if !everyone {
            failed.push(format!(
                "fleet ({follow:?}): change {k} did not reach every watcher"
            ));
        }
        if let Some(t) = last_seen {
            propagation.push(t.saturating_duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    for s in &seen {
        if let Some(error) = &s.error {
            failed.push(format!("fleet ({follow:?}): a watcher failed: {error}"));
            break;
        }
        let complete = match follow {
            Follow::Stream | Follow::StreamShared | Follow::Changes => s.puts == expected,
            Follow::Lists => s.instances_at_end == sizes.instances + sizes.changes,
        };
        if !complete || s.answers.last().map_or(0, |a| a.1) < last {
            failed.push(format!(
                "fleet ({follow:?}): a watcher's view differs from the registry's"
            ));
            break;
        }
    }
    let bytes: usize = seen.iter().map(|s| s.bytes_after_sync).sum();
    let per = bytes as f64 / (sizes.changes * watchers) as f64 / 1024.0;
    results.record(CPU_ROW, "%", follow.into(), cpu);
    results.record(BYTES_ROW, "KiB", follow.into(), per);
    results.record(
        P50_ROW,
        "ms",
        follow.into(),
        quantile(propagation.clone(), 0.5),
    );
    results.record(MAX_ROW, "ms", follow.into(), quantile(propagation, 1.0));
    Ok(())
}

/// The service's index once past `after` (at once after a change), read
/// through the changes feed: a small answer but for the first (`None`).
async fn index_after(
    http: &HttpClient,
    base: &str,
    service: &beacon::wire::ServiceName,
    after: Option<u64>,
) -> Result<u64, String> {
    let url = match after {
        Some(after) => format!("{base}/v1/services/{service}/changes?index={after}&wait=10s"),
        None => format!("{base}/v1/services/{service}/changes"),
    };
    let (_, body) = get(http, &url).await?;
    serde_json::from_slice::<ServiceChanges>(&body)
        .map(|c| c.index)
        .map_err(|e| e.to_string())
}

/// Whether every watcher's latest index is past `index`.
fn all_past(latest: &[Arc<AtomicU64>], index: u64) -> bool {
    latest.iter().all(|l| l.load(Ordering::Relaxed) > index)
}

/// Parked blocking queries on the registry.
pub(super) async fn parked(metrics_url: &str) -> usize {
    super::fetch_text(metrics_url)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("beacon_registry_parked_watchers "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The share of a core `pid` used since `started` (from `cpu_before`
/// ticks); then stops the watchers and collects what each saw.
pub(super) async fn stop_watchers<T>(
    pid: u32,
    cpu_before: u64,
    started: Instant,
    stop: &watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<T>>,
) -> Result<(f64, Vec<T>), String> {
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - cpu_before) as f64 / ticks_per_second() / elapsed * 100.0;
    let _ = stop.send(true);
    let mut seen = Vec::with_capacity(tasks.len());
    for task in tasks {
        seen.push(task.await.map_err(|e| e.to_string())?);
    }
    Ok((cpu, seen))
}

/// User plus system clock ticks `pid` has used.
pub(super) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the whole line.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub(super) fn ticks_per_second() -> f64 {
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_of_this_process_rise_with_work() {
        let pid = std::process::id();
        let before = cpu_ticks(pid);
        let mut x = 0u64;
        let until = std::time::Instant::now() + Duration::from_millis(100);
        while std::time::Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        assert!(cpu_ticks(pid) > before);
    }
}
