//! The fleet on etcd, the anchor: the same keys under one prefix, the same
//! number of watchers each holding a gRPC watch stream on it (a connection
//! each, as separate processes have; and spread over a few connections, as
//! the registry's stream over HTTP/2 is), the same changes a second apart —
//! etcd's CPU, what each watcher receives per change and the time from a
//! change's write answered to its last watcher.

use super::{
    etcd::{watch_prefix, Etcd},
    fleet::{cpu_ticks, stop_watchers, Column, FleetResults, FleetSizes},
    ops::spread,
    table::quantile,
};
use etcd_client::{Client as GrpcClient, EventType, PutOptions, Txn, TxnOp, WatchStream};
use std::time::Duration;
use tokio::{sync::watch, time::Instant};

use super::fleet::SHARED_CONNECTIONS;

/// What one etcd watcher saw: when each change's key arrived, and bytes.
#[derive(Debug, Default)]
struct Seen {
    arrivals: Vec<(String, Instant)>,
    bytes: usize,
    error: Option<String>,
}

/// Measures the fleet on `etcd`, recording its column of `results`.
pub(super) async fn measure(
    etcd: &Etcd,
    sizes: FleetSizes,
    results: &mut FleetResults,
    failed: &mut Vec<String>,
) -> Result<(), String> {
    let prefix = "/fleet/";
    const BATCH: usize = 100;
    let loaded = {
        let grpc = etcd.grpc.clone();
        let instances = sizes.instances;
        spread(16, instances.div_ceil(BATCH), move |b| {
            let mut grpc = grpc.clone();
            async move {
                let ops: Vec<TxnOp> = (b * BATCH..((b + 1) * BATCH).min(instances))
                    .map(|i| TxnOp::put(format!("{prefix}i{i}"), value(), None::<PutOptions>))
                    .collect();
                grpc.txn(Txn::new().and_then(ops)).await.is_ok()
            }
        })
        .await
    };
    if loaded.failed > 0 {
        failed.push(format!(
            "fleet (etcd): {} load batches failed",
            loaded.failed
        ));
    }
    // A connection each, then the watchers sharing as many connections
    // as the registry's stream over HTTP/2 does; each run puts keys of its
    // own.
    for (run, (connections, column)) in [
        (sizes.changes_watchers, Column::EtcdEach),
        (SHARED_CONNECTIONS, Column::Etcd),
    ]
    .into_iter()
    .enumerate()
    {
        let first_key = sizes.instances + run * sizes.changes;
        watch_once(etcd, sizes, first_key, connections, column, results, failed).await?;
    }
    Ok(())
}

/// One run of `sizes.changes` puts (keys from `first_key` on) watched by
/// `sizes.changes_watchers` streams over `connections` connections,
/// recorded in `column`.
async fn watch_once(
    etcd: &Etcd,
    sizes: FleetSizes,
    first_key: usize,
    connections: usize,
    column: Column,
    results: &mut FleetResults,
    failed: &mut Vec<String>,
) -> Result<(), String> {
    let prefix = "/fleet/";
    let watchers = sizes.changes_watchers;
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(
            GrpcClient::connect([etcd.url.clone()], None)
                .await
                .map_err(|e| format!("etcd gRPC: {e}"))?,
        );
    }
    let (stop_tx, stop) = watch::channel(false);
    let mut tasks = Vec::with_capacity(watchers);
    for w in 0..watchers {
        let stream = watch_prefix(&clients[w % connections], prefix).await?;
        tasks.push(tokio::spawn(follow(stream, stop.clone())));
    }
    let pid = etcd.pid();
    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut written = Vec::with_capacity(sizes.changes);
    let mut grpc = etcd.grpc.clone();
    for k in 0..sizes.changes {
        tokio::time::sleep_until(started + Duration::from_secs(k as u64)).await;
        let key = format!("{prefix}i{}", first_key + k);
        grpc.put(key.clone(), value(), None)
            .await
            .map_err(|e| e.to_string())?;
        written.push((key, Instant::now()));
    }
    // The last change reaches everyone (bounded), then stop.
    let settle = Instant::now() + Duration::from_secs(10);
    tokio::time::sleep_until(
        (written.last().map_or(started, |w| w.1) + Duration::from_millis(500)).min(settle),
    )
    .await;
    let (cpu, seen) = stop_watchers(pid, cpu_before, started, &stop_tx, tasks).await?;
    let mut propagation = Vec::new();
    for (key, at) in &written {
        let arrivals: Vec<Instant> = seen
            .iter()
            .filter_map(|s| s.arrivals.iter().find(|(k, _)| k == key).map(|(_, t)| *t))
            .collect();
        if arrivals.len() < watchers {
            failed.push(format!(
                "fleet (etcd, {connections} connections): {key} reached {} of {watchers} watchers",
                arrivals.len()
            ));
        }
        if let Some(t) = arrivals.into_iter().max() {
            propagation.push(t.saturating_duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    if let Some(error) = seen.iter().find_map(|s| s.error.clone()) {
        failed.push(format!(
            "fleet (etcd, {connections} connections): a watcher failed: {error}"
        ));
    }
    let bytes: usize = seen.iter().map(|s| s.bytes).sum();
    let per = bytes as f64 / (sizes.changes * watchers).max(1) as f64 / 1024.0;
    results.record(super::fleet::CPU_ROW, "%", column, cpu);
    results.record(super::fleet::BYTES_ROW, "KiB", column, per);
    let p50 = quantile(propagation.clone(), 0.5);
    results.record(super::fleet::P50_ROW, "ms", column, p50);
    results.record(
        super::fleet::MAX_ROW,
        "ms",
        column,
        quantile(propagation, 1.0),
    );
    Ok(())
}

/// What a registration record weighs in the registry's own etcd store.
fn value() -> Vec<u8> {
    vec![b'x'; 100]
}

/// One watcher: every event's key and arrival, until `stop`.
async fn follow(mut stream: WatchStream, mut stop: watch::Receiver<bool>) -> Seen {
    let mut seen = Seen::default();
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            _ = stop.changed() => break,
        };
        match message {
            Ok(Some(answer)) => {
                let now = Instant::now();
                for event in answer.events() {
                    if event.event_type() != EventType::Put {
                        continue;
                    }
                    if let Some(kv) = event.kv() {
                        // Key and value as sent; the event's few header
                        // bytes and the gRPC framing are not counted.
                        seen.bytes += kv.key().len() + kv.value().len();
                        let key = String::from_utf8_lossy(kv.key()).into_owned();
                        seen.arrivals.push((key, now));
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                seen.error = Some(e.to_string());
                break;
            }
        }
    }
    seen
}
