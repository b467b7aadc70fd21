//! Shared leases at fleet size, beside etcd's own leases over gRPC: many
//! instances on few leases — the memory they take, what a keepalive costs
//! at that size, and how soon the end of a lease (deleted, or run out)
//! reaches a watcher as every one of its instances gone. Each run starts a
//! fresh registry and a fresh etcd, so memory is the whole process's.

use super::{
    etcd::{watch_prefix, Etcd, KeepAlive},
    fleet_watch::get,
    id, name,
    ops::{percentile, spread},
    table::Table,
};
use crate::topology::rss_kib;
use beacon::{
    net::http::{http_client, HttpClient},
    wire::{Address, Registration, ServiceChanges},
};
use etcd_client::{EventType, PutOptions, Txn, TxnOp};
use serde::Serialize;
use std::{sync::Arc, time::Duration};
use tokio::time::Instant;

/// Sizes of the shared-lease measurement.
#[derive(Debug, Clone, Copy)]
pub struct LeaseSizes {
    /// Instances (etcd: keys), spread evenly over the leases.
    pub instances: usize,
    /// Shared leases.
    pub leases: usize,
}

impl LeaseSizes {
    fn per_lease(&self) -> usize {
        self.instances / self.leases.max(1)
    }
}

/// The shared-lease section's figures.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LeaseResults {
    /// Each figure: columns registry, etcd.
    pub table: Table,
    /// The sizes, for the heading.
    pub shape: Option<(usize, usize)>,
}

impl LeaseResults {
    fn record(&mut self, what: &str, unit: &'static str, registry: f64, etcd: f64) {
        self.table.record(what, unit, 0, registry);
        self.table.record(what, unit, 1, etcd);
    }

    /// A markdown section.
    pub fn markdown(&self) -> String {
        let Some((instances, leases)) = self.shape else {
            return String::new();
        };
        let per = instances / leases.max(1);
        let mut md = format!(
            "\n## A fleet: one lease per process\n\n{instances} instances on {leases} shared \
             leases ({per} each, one service per lease) in a fresh registry (memory store), \
             beside {instances} keys of ~100 bytes on {leases} etcd leases in a fresh etcd \
             (gRPC). Memory is each process's whole resident set. A keepalive is one \
             lease's renewal (etcd: a keep-alive on its open stream), 64 at a time. A lease's \
             end is timed from the DELETE sent (etcd: the revoke) — or, run out, from its \
             deadline (the last keepalive's answer plus the TTL) — to a watcher of that \
             lease's instances holding the answer that removes all {per}. Keepalives needed: \
             one per lease per third of a 15 s TTL; instances renewing on their own would \
             need {} a second. Medians of the runs, range in brackets.\n\n\
             | figure | registry | etcd gRPC |\n|---|---|---|\n",
            instances / 5
        );
        self.table.write_rows(&mut md, 2);
        md
    }
}

/// Measures both systems once at `sizes`; failures are returned, not
/// hidden.
pub async fn run(
    registry_binary: &std::path::Path,
    sizes: LeaseSizes,
    results: &mut LeaseResults,
) -> Result<Vec<String>, String> {
    results.shape = Some((sizes.instances, sizes.leases));
    let mut failed = Vec::new();
    let (registry_mb, registry_keepalive, deleted, ran_out) =
        on_registry(registry_binary, sizes, &mut failed).await?;
    let (etcd_mb, etcd_keepalive, revoked, expired) = on_etcd(sizes, &mut failed).await?;
    let keepalives = sizes.leases as f64 / 5.0;
    let per = sizes.per_lease();
    results.record("resident memory", "MB", registry_mb, etcd_mb);
    results.record(
        "keepalives a second needed (TTL 15 s)",
        "/s",
        keepalives,
        keepalives,
    );
    results.record(
        &format!("keepalive p50, at {} instances", sizes.instances),
        "ms",
        registry_keepalive,
        etcd_keepalive,
    );
    results.record(
        &format!("lease ended → watcher saw its {per} gone"),
        "ms",
        deleted,
        revoked,
    );
    results.record(
        &format!("lease ran out → watcher saw its {per} gone"),
        "ms",
        ran_out,
        expired,
    );
    Ok(failed)
}

/// Registry: memory (MB), keepalive p50 (ms), DELETE → watcher (ms),
/// deadline → watcher (ms).
async fn on_registry(
    binary: &std::path::Path,
    sizes: LeaseSizes,
    failed: &mut Vec<String>,
) -> Result<(f64, f64, f64, f64), String> {
    let (registry, client) = super::start_registry(binary)?;
    let client = Arc::new(client);
    let mut leases = Vec::with_capacity(sizes.leases);
    for _ in 0..sizes.leases {
        let grant = client.grant(Duration::from_secs(3600)).await;
        leases.push(grant.map_err(|e| e.to_string())?.lease);
    }
    let leases = Arc::new(leases);
    let address = Address::new("http://127.0.0.1:9000").map_err(|e| e.to_string())?;
    let registered = {
        let (client, leases, address) = (Arc::clone(&client), Arc::clone(&leases), address);
        spread(64, sizes.instances, move |i| {
            let (client, leases) = (Arc::clone(&client), Arc::clone(&leases));
            let lease = i % leases.len();
            let registration = Registration {
                lease: Some(leases[lease].clone()),
                ..Registration::new(address.clone())
            };
            async move {
                let Ok(service) = name(&format!("lease-{lease}")) else {
                    return false;
                };
                client
                    .register(&service, &id(i), &registration)
                    .await
                    .is_ok()
            }
        })
        .await
    };
    if registered.failed > 0 {
        failed.push(format!(
            "leases: {} of {} registrations failed",
            registered.failed, sizes.instances
        ));
    }
    let memory = rss_kib(registry.pid()).unwrap_or(0) as f64 / 1024.0;
    let keepalive = {
        let (client, leases) = (Arc::clone(&client), Arc::clone(&leases));
        timed(sizes.leases, move |i| {
            let (client, leases) = (Arc::clone(&client), Arc::clone(&leases));
            async move { client.keep_alive(&leases[i]).await.is_ok() }
        })
        .await
    };
    let (keepalive, wrong) = keepalive;
    if wrong > 0 {
        failed.push(format!("leases: {wrong} keepalives failed"));
    }
    // One lease deleted: its watcher, parked at the present index.
    let http = http_client(Duration::from_secs(10));
    let per = sizes.per_lease();
    let deleted = {
        let service = format!("lease-{}", 0);
        let watcher = Watcher::park(&http, &registry.url, &service).await?;
        let sent = Instant::now();
        client.revoke(&leases[0]).await.map_err(|e| e.to_string())?;
        watcher.took_since(sent, per, failed, "DELETE").await
    };
    // One lease left to run out: a new one of 1 s, kept alive once.
    let ran_out = {
        let short = client
            .grant(Duration::from_secs(1))
            .await
            .map_err(|e| e.to_string())?;
        let service = name("lease-short")?;
        let registration = Registration {
            lease: Some(short.lease.clone()),
            ..Registration::new(Address::new("http://127.0.0.1:9000").map_err(|e| e.to_string())?)
        };
        for i in 0..per {
            client
                .register(&service, &id(i), &registration)
                .await
                .map_err(|e| e.to_string())?;
        }
        let watcher = Watcher::park(&http, &registry.url, "lease-short").await?;
        client
            .keep_alive(&short.lease)
            .await
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_millis(short.ttl_ms);
        watcher.took_since(deadline, per, failed, "run out").await
    };
    Ok((memory, keepalive, deleted, ran_out))
}

/// A watcher of one service's changes, parked at its present index.
struct Watcher {
    task: tokio::task::JoinHandle<Result<(Instant, ServiceChanges), String>>,
}

impl Watcher {
    async fn park(http: &HttpClient, base: &str, service: &str) -> Result<Self, String> {
        let (_, body) = get(http, &format!("{base}/v1/services/{service}/changes")).await?;
        let index = serde_json::from_slice::<ServiceChanges>(&body)
            .map_err(|e| e.to_string())?
            .index;
        let parked_before = parked(base).await;
        let url = format!("{base}/v1/services/{service}/changes?index={index}&wait=30s");
        let http = http.clone();
        let task = tokio::spawn(async move {
            let (at, body) = get(&http, &url).await?;
            let changes = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            Ok((at, changes))
        });
        let waiting = Instant::now();
        while parked(base).await <= parked_before {
            if waiting.elapsed() > Duration::from_secs(10) {
                return Err(format!("the watcher of {service} never parked"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Self { task })
    }

    /// Milliseconds from `since` to the answer; checks it removed `per`.
    async fn took_since(
        self,
        since: Instant,
        per: usize,
        failed: &mut Vec<String>,
        how: &str,
    ) -> f64 {
        match self.task.await {
            Ok(Ok((at, changes))) => {
                let deletes = changes
                    .changes
                    .iter()
                    .filter(|c| c.op == beacon::wire::ChangeOp::Delete)
                    .count();
                if deletes != per || changes.snapshot {
                    failed.push(format!(
                        "leases ({how}): the watcher got {deletes} deletes of {per} in one answer"
                    ));
                }
                millis_between(since, at)
            }
            Ok(Err(e)) => {
                failed.push(format!("leases ({how}): the watcher failed: {e}"));
                f64::NAN
            }
            Err(e) => {
                failed.push(format!("leases ({how}): the watcher panicked: {e}"));
                f64::NAN
            }
        }
    }
}

/// etcd: memory (MB), keepalive p50 (ms), revoke → watcher (ms),
/// deadline → watcher (ms).
async fn on_etcd(
    sizes: LeaseSizes,
    failed: &mut Vec<String>,
) -> Result<(f64, f64, f64, f64), String> {
    let etcd = Etcd::start().await?;
    let mut leases = Vec::with_capacity(sizes.leases);
    for _ in 0..sizes.leases {
        let grant = etcd.grpc.clone().lease_grant(3600, None).await;
        leases.push(grant.map_err(|e| e.to_string())?.id());
    }
    let leases = Arc::new(leases);
    // Keys in transactions of 100 puts: etcd takes at most 128 operations
    // in one, and one put per request would time the loading, not etcd.
    const BATCH: usize = 100;
    let batches = sizes.instances.div_ceil(BATCH);
    let put = {
        let (grpc, leases) = (etcd.grpc.clone(), Arc::clone(&leases));
        let instances = sizes.instances;
        spread(16, batches, move |b| {
            let (mut grpc, leases) = (grpc.clone(), Arc::clone(&leases));
            async move {
                let ops: Vec<TxnOp> = (b * BATCH..((b + 1) * BATCH).min(instances))
                    .map(|i| {
                        let lease = i % leases.len();
                        let options = PutOptions::new().with_lease(leases[lease]);
                        TxnOp::put(
                            format!("/bench/lease/{lease}/i{i}"),
                            [b'x'; 100],
                            Some(options),
                        )
                    })
                    .collect();
                grpc.txn(Txn::new().and_then(ops)).await.is_ok()
            }
        })
        .await
    };
    if put.failed > 0 {
        failed.push(format!(
            "leases: {} of {batches} etcd batches failed",
            put.failed
        ));
    }
    let memory = rss_kib(etcd.pid()).unwrap_or(0) as f64 / 1024.0;
    // Keep-alive streams opened before timing, one per lease.
    let mut streams = Vec::with_capacity(sizes.leases);
    for &lease in leases.iter() {
        streams.push(tokio::sync::Mutex::new(
            KeepAlive::open(&etcd.grpc, lease).await?,
        ));
    }
    let streams = Arc::new(streams);
    let (keepalive, wrong) = timed(sizes.leases, move |i| {
        let streams = Arc::clone(&streams);
        async move { streams[i].lock().await.renew().await }
    })
    .await;
    if wrong > 0 {
        failed.push(format!("leases: {wrong} etcd keep-alives failed"));
    }
    let per = sizes.per_lease();
    let revoked = {
        let stream = watch_prefix(&etcd.grpc, "/bench/lease/0/").await?;
        let sent = Instant::now();
        etcd.grpc
            .clone()
            .lease_revoke(leases[0])
            .await
            .map_err(|e| e.to_string())?;
        all_deleted(stream, per, failed, "revoke")
            .await
            .map_or(f64::NAN, |at| millis_between(sent, at))
    };
    let expired = {
        let mut grpc = etcd.grpc.clone();
        let short = grpc.lease_grant(1, None).await.map_err(|e| e.to_string())?;
        for b in 0..per.div_ceil(BATCH) {
            let ops: Vec<TxnOp> = (b * BATCH..((b + 1) * BATCH).min(per))
                .map(|i| {
                    let options = PutOptions::new().with_lease(short.id());
                    TxnOp::put(format!("/bench/short/i{i}"), [b'x'; 100], Some(options))
                })
                .collect();
            grpc.txn(Txn::new().and_then(ops))
                .await
                .map_err(|e| e.to_string())?;
        }
        let stream = watch_prefix(&etcd.grpc, "/bench/short/").await?;
        let mut kept = KeepAlive::open(&etcd.grpc, short.id()).await?;
        let renewed = kept.renew().await;
        // etcd grants at least its minimum TTL; its answer says which.
        let ttl = grpc
            .lease_time_to_live(short.id(), None)
            .await
            .map_or(1, |t| t.granted_ttl());
        let deadline = Instant::now() + Duration::from_secs(u64::try_from(ttl).unwrap_or(1));
        if !renewed {
            failed.push("leases: the short etcd lease did not renew".into());
        }
        all_deleted(stream, per, failed, "etcd run out")
            .await
            .map_or(f64::NAN, |at| millis_between(deadline, at))
    };
    Ok((memory, keepalive, revoked, expired))
}

/// When `stream` had delivered `per` deletions (within 30 s).
async fn all_deleted(
    mut stream: etcd_client::WatchStream,
    per: usize,
    failed: &mut Vec<String>,
    how: &str,
) -> Option<Instant> {
    let mut deleted = 0;
    let until = Instant::now() + Duration::from_secs(30);
    while deleted < per {
        let message = tokio::time::timeout_at(until, stream.message()).await;
        match message {
            Ok(Ok(Some(answer))) => {
                deleted += answer
                    .events()
                    .iter()
                    .filter(|e| e.event_type() == EventType::Delete)
                    .count();
            }
            _ => {
                failed.push(format!(
                    "leases ({how}): etcd's watch saw {deleted} of {per} deletions"
                ));
                return None;
            }
        }
    }
    Some(Instant::now())
}

/// `op(i)` for `i` in `0..count`, 64 at a time, each timed: the median in
/// ms, and how many failed.
async fn timed<F, Fut>(count: usize, op: F) -> (f64, usize)
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let times = Arc::new(std::sync::Mutex::new(Vec::with_capacity(count)));
    let tally = {
        let times = Arc::clone(&times);
        spread(64, count, move |i| {
            let (op, times) = (op.clone(), Arc::clone(&times));
            async move {
                let started = Instant::now();
                let ok = op(i).await;
                if let Ok(mut times) = times.lock() {
                    times.push(started.elapsed());
                }
                ok
            }
        })
        .await
    };
    let times = std::mem::take(&mut *times.lock().unwrap_or_else(|p| p.into_inner()));
    (percentile(times, 0.5), tally.failed)
}

fn millis_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

async fn parked(base: &str) -> usize {
    super::fleet::parked(&format!("{base}/_metrics")).await
}
