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
//!
//! A changes read after index N is made once too, for every watcher that
//! wakes at N: its puts carry the lease time logged with each change, so
//! the same two indexes always give the same bytes and it is kept until
//! the next delta replaces it.

use super::Catalog;
use beacon_wire::{ServiceName, WatchQuery};
use bytes::Bytes;
use std::{sync::Mutex, time::Duration};
use tokio_util::sync::CancellationToken;

/// Longest a made answer is served: how stale its `expires_in_ms` may be.
const KEPT_MS: u64 = 1000;

/// One service's last made answer.
#[derive(Debug, Default)]
pub(super) struct MadeAnswer(Mutex<Option<Made>>);

/// One service's last delta: the changes after `after`, up to `index`.
#[derive(Debug, Default)]
pub(super) struct MadeDelta(Mutex<Option<Delta>>);

#[derive(Debug)]
struct Delta {
    after: u64,
    index: u64,
    json: Bytes,
}

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

impl Catalog {
    /// A changes read as JSON: with `query`, waits as
    /// [`wait_for_change`](Self::wait_for_change) does, then answers like
    /// [`changes`](Self::changes) after `query.index`; without, a snapshot
    /// at once. Index 0 answers at once for a service that has an index;
    /// for one never seen it waits for its first change, as the list read
    /// does, so a watcher of a service not there yet does not spin.
    pub async fn read_changes_json(
        &self,
        service: &ServiceName,
        query: Option<WatchQuery>,
        cancel: &CancellationToken,
    ) -> (u64, Bytes) {
        let Some(query) = query else {
            return self.changes_json(service, 0);
        };
        self.wait_past(service, query.index, query.wait, cancel)
            .await;
        self.changes_json(service, query.index)
    }

    /// [`changes`](Self::changes) after `after` as JSON, with its index: a
    /// delta already made for the same two indexes when there is one,
    /// else made now and kept for the watchers still to come.
    pub fn changes_json(&self, service: &ServiceName, after: u64) -> (u64, Bytes) {
        if let Some(entry) = self.services.get(service) {
            let index = *entry.index.borrow();
            let made = super::lock(&entry.delta.0);
            if let Some(made) = made
                .as_ref()
                .filter(|m| m.after == after && m.index == index)
            {
                self.metrics.change_deltas.inc();
                self.metrics.answers_reused.inc();
                return (made.index, made.json.clone());
            }
        }
        let answer = self.changes(service, after);
        let json = encode(&answer);
        // A snapshot shows lease time as of now: never kept; nor is an
        // empty delta, which would push out one still to be read.
        if !answer.snapshot && answer.index != after {
            if let Some(entry) = self.services.get(service) {
                let mut made = super::lock(&entry.delta.0);
                // Keep the newest: a slower reader must not put an older
                // one back.
                if made.as_ref().is_none_or(|m| m.index <= answer.index) {
                    *made = Some(Delta {
                        after,
                        index: answer.index,
                        json: json.clone(),
                    });
                }
            }
        }
        (answer.index, json)
    }
}

fn encode(answer: &impl serde::Serialize) -> Bytes {
    // Serializing plain data (strings, numbers, maps with string keys)
    // can't fail.
    serde_json::to_vec(answer)
        .map(Bytes::from)
        .unwrap_or_else(|_| unreachable!("a registry answer always serializes"))
}
