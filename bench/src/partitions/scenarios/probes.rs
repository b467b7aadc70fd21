//! Registrations made from the test's side for the registry scenarios —
//! "probes" that nothing calls — and the long-polls that watch them.

use crate::partitions::{get_json_within, put_json, Topology};
use beacon::net::http::HttpClient;
use serde_json::json;
use std::{
    collections::HashSet,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tokio::{task::JoinHandle, time::Instant};

/// A probe's lease: longer than any scenario, so only a fault could remove one.
const PROBE_TTL_MS: u64 = 120_000;

/// Registers probe `id` of `service` through `replica`: whether the
/// registry acknowledged it (2xx).
pub(super) async fn register(http: &HttpClient, replica: &str, service: &str, id: &str) -> bool {
    register_for(http, replica, service, id, PROBE_TTL_MS).await
}

/// Registers probe `id` with a lease of `ttl_ms`.
pub(super) async fn register_for(
    http: &HttpClient,
    replica: &str,
    service: &str,
    id: &str,
    ttl_ms: u64,
) -> bool {
    let url = format!("{replica}/v1/services/{service}/instances/{id}");
    let body = json!({"address": "http://10.0.0.1:1", "ttl_ms": ttl_ms});
    put_json(http, &url, &body)
        .await
        .is_some_and(|(status, _)| (200..300).contains(&status))
}

/// The index `replica` gives `service` (`None`: it did not answer).
pub(super) async fn index_at(topology: &Topology, replica: &str, service: &str) -> Option<u64> {
    let listing = topology
        .json(&format!("{replica}/v1/services/{service}"))
        .await?;
    listing["index"].as_u64()
}

/// How many of `ids` every replica lists under `service`.
pub(super) async fn present_everywhere(
    topology: &Topology,
    service: &str,
    ids: &[String],
) -> usize {
    let mut everywhere: Option<HashSet<String>> = None;
    for replica in &topology.replicas {
        let listed: HashSet<String> = topology
            .registered_in(replica, service)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        everywhere = Some(match everywhere {
            None => listed,
            Some(so_far) => so_far.intersection(&listed).cloned().collect(),
        });
    }
    let everywhere = everywhere.unwrap_or_default();
    ids.iter().filter(|id| everywhere.contains(*id)).count()
}

/// A long-poll on `replica` for `service` from `index`, spawned: answers
/// when it returned (or `None`: no answer) and the index it returned with.
pub(super) fn long_poll(
    replica: &str,
    service: &str,
    index: u64,
    wait: Duration,
) -> JoinHandle<Option<(Instant, u64)>> {
    let url = format!(
        "{replica}/v1/services/{service}?index={index}&wait={}ms",
        wait.as_millis()
    );
    tokio::spawn(async move {
        let http = beacon::net::http::http_client(Duration::from_millis(500));
        let answer = get_json_within(&http, &url, wait + Duration::from_secs(2)).await?;
        Some((Instant::now(), answer["index"].as_u64()?))
    })
}

/// Writers registering probes as fast as the registry acknowledges them,
/// each through the replicas in turn.
pub(super) struct Writers {
    acked: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: tokio_util::sync::CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Writers {
    /// Starts `writers` writers registering `service` probes.
    pub(super) fn start(replicas: &[String], service: &'static str, writers: usize) -> Self {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let tasks = (0..writers)
            .map(|w| {
                let (acked, stop, replicas) = (Arc::clone(&acked), stop.clone(), replicas.to_vec());
                tokio::spawn(async move {
                    let http = beacon::net::http::http_client(Duration::from_millis(500));
                    for n in 0.. {
                        if stop.is_cancelled() {
                            return;
                        }
                        let id = format!("probe-{w}-{n}");
                        let replica = &replicas[(w + n) % replicas.len()];
                        if register(&http, replica, service, &id).await {
                            lock(&acked).push((Instant::now(), id));
                        } else {
                            // Refused or unanswered: not acknowledged, so
                            // nothing is owed; try the next one shortly.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Self { acked, stop, tasks }
    }

    /// Registrations acknowledged since `since`.
    pub(super) fn acked_since(&self, since: Instant) -> usize {
        lock(&self.acked)
            .iter()
            .filter(|(at, _)| *at >= since)
            .count()
    }

    /// Stops them: every acknowledged id, and the longest time between
    /// two acknowledgements.
    pub(super) async fn finish(self) -> (Vec<String>, Duration) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        let mut acked = std::mem::take(&mut *lock(&self.acked));
        acked.sort_by_key(|(at, _)| *at);
        let longest_gap = acked
            .windows(2)
            .map(|pair| pair[1].0 - pair[0].0)
            .max()
            .unwrap_or_default();
        (acked.into_iter().map(|(_, id)| id).collect(), longest_gap)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
