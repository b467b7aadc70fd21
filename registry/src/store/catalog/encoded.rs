//! Answers made once: a service's list read as JSON, encoded once per index
//! and served to every reader from that, so that a change that wakes a
//! thousand watchers of a 10k-instance list costs one encoding, not a
//! thousand.
//!
//! Two things change an answer without changing the index: time (each
//! instance's `expires_in_ms` counts down, and an instance whose lease ran
//! out is hidden before the expiry task removes it) and refreshes (a
//! heartbeat). So a made answer is kept at most [`KEPT_MS`], and never past
//! the moment its first instance could run out: it shows each lease as
//! of a moment no more than that old.

use super::Catalog;
use beacon_wire::{ServiceInstances, ServiceName};
use bytes::Bytes;
use std::{sync::Mutex, time::Duration};
use tokio_util::sync::CancellationToken;

/// Longest a made answer is served: how stale its `expires_in_ms` may be.
const KEPT_MS: u64 = 1000;

/// One service's last made answer.
#[derive(Debug, Default)]
pub(super) struct MadeAnswer(Mutex<Option<Made>>);

#[derive(Debug)]
struct Made {
    index: u64,
    /// Catalog-clock milliseconds until which it may be served.
    until: u64,
    json: Bytes,
}

impl Catalog {
    /// The list read of `service` ([`resolve`](Self::resolve)) as JSON,
    /// with its index: the made answer when it still holds (same index,
    /// young enough, no lease run out since), else made now and kept.
    pub fn resolve_json(&self, service: &ServiceName) -> (u64, Bytes) {
        let now = self.now();
        if let Some(entry) = self.services.get(service) {
            let index = *entry.index.borrow();
            let made = super::lock(&entry.made.0);
            if let Some(made) = made.as_ref().filter(|m| m.index == index && now < m.until) {
                self.metrics.answers_reused.inc();
                return (made.index, made.json.clone());
            }
        }
        let answer = self.resolve(service);
        let json = encode(&answer);
        let first_end = answer.instances.iter().map(|i| i.expires_in_ms).min();
        let until = now + first_end.unwrap_or(KEPT_MS).min(KEPT_MS);
        if let Some(entry) = self.services.get(service) {
            let mut made = super::lock(&entry.made.0);
            // Keep the newest: a slower reader must not put an older one back.
            if made.as_ref().is_none_or(|m| m.index <= answer.index) {
                *made = Some(Made {
                    index: answer.index,
                    until,
                    json: json.clone(),
                });
            }
        }
        (answer.index, json)
    }
}

impl Catalog {
    /// A blocking list read as JSON: waits as
    /// [`wait_for_change`](Self::wait_for_change) does, then answers as
    /// [`resolve_json`](Self::resolve_json).
    pub async fn wait_for_change_json(
        &self,
        service: &ServiceName,
        after: u64,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> (u64, Bytes) {
        self.wait_past(service, after, wait, cancel).await;
        self.resolve_json(service)
    }
}

fn encode(answer: &ServiceInstances) -> Bytes {
    // Serializing plain data (strings, numbers, maps with string keys)
    // can't fail.
    serde_json::to_vec(answer)
        .map(Bytes::from)
        .unwrap_or_else(|_| unreachable!("a ServiceInstances always serializes"))
}
