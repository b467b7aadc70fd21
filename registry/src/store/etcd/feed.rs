//! Following etcd: the initial load, the watch, and re-reads after
//! compaction or an outage.

use super::{
    client::{Change, Kv, WatchMessage},
    record::Record,
    Inner, Seen,
};
use crate::store::catalog::Stamp;
use beacon_wire::backoff::Backoff;
use std::{
    collections::HashSet,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};
use tokio_util::sync::CancellationToken;

impl Inner {
    /// Reads every instance under the prefix, retrying until etcd answers.
    /// Returns the revision read at.
    pub(super) async fn load_with_retries(&self) -> u64 {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            match self.load().await {
                Ok(revision) => return revision,
                Err(e) => {
                    tracing::warn!("cannot read etcd yet: {e}");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Replaces the view with what etcd holds now; returns the revision.
    async fn load(&self) -> Result<u64, super::EtcdError> {
        let (revision, kvs) = self.client.range_prefix(self.keys.prefix()).await?;
        let present: HashSet<String> = kvs.iter().map(|kv| kv.key.clone()).collect();
        for kv in kvs {
            self.put(kv, Stamp::At(revision));
        }
        for (service, id) in self.catalog.keys() {
            let key = self.keys.key(&service, &id);
            if !present.contains(&key) {
                self.seen.remove(&key);
                self.catalog.remove(&service, &id, Stamp::At(revision));
            }
        }
        tracing::info!(revision, "loaded the registry from etcd");
        Ok(revision)
    }

    /// Applies the watch from `revision` on, reconnecting (and re-reading
    /// after compaction) until `stop` fires.
    pub(super) async fn follow(self: Arc<Self>, mut revision: u64, stop: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut reload = false;
        while !stop.is_cancelled() {
            if reload {
                match self.load().await {
                    Ok(loaded) => {
                        revision = loaded;
                        reload = false;
                    }
                    Err(e) => {
                        tracing::warn!("cannot re-read etcd: {e}");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(backoff.next_delay()) => continue,
                        }
                    }
                }
            }
            let outcome = tokio::select! {
                _ = stop.cancelled() => return,
                outcome = self.watch_from(revision) => outcome,
            };
            self.watching.store(false, Ordering::Relaxed);
            match outcome {
                WatchEnd::Compacted => reload = true,
                WatchEnd::Broken { last, error } => {
                    revision = last;
                    tracing::warn!("etcd watch lost at revision {revision}: {error}; reconnecting");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
    }

    /// One watch session; returns how it ended.
    async fn watch_from(&self, mut revision: u64) -> WatchEnd {
        let mut watch = match self.client.watch(self.keys.prefix(), revision + 1).await {
            Ok(watch) => watch,
            Err(e) => {
                return WatchEnd::Broken {
                    last: revision,
                    error: e.to_string(),
                }
            }
        };
        loop {
            match watch.next().await {
                Ok(WatchMessage::Created) => {
                    self.watching.store(true, Ordering::Relaxed);
                    tracing::info!(revision, "following etcd");
                }
                Ok(WatchMessage::Compacted(at)) => {
                    tracing::warn!("etcd compacted history up to {at}; re-reading");
                    return WatchEnd::Compacted;
                }
                Ok(WatchMessage::Changes(changes)) => {
                    for change in changes {
                        revision = revision.max(match &change {
                            Change::Put(kv) | Change::Delete(kv) => kv.mod_revision,
                        });
                        match change {
                            Change::Put(kv) => {
                                let stamp = Stamp::At(kv.mod_revision);
                                self.put(kv, stamp);
                            }
                            Change::Delete(kv) => self.delete(&kv),
                        }
                    }
                }
                Err(e) => {
                    return WatchEnd::Broken {
                        last: revision,
                        error: e.to_string(),
                    }
                }
            }
        }
    }

    /// A key was written: a registration, a re-registration or a heartbeat.
    fn put(&self, kv: Kv, stamp: Stamp) {
        let Some((service, id)) = self.keys.parse(&kv.key) else {
            return;
        };
        let Some((record, registration)) = serde_json::from_slice::<Record>(&kv.value)
            .ok()
            .and_then(|r| r.registration().map(|reg| (r, reg)))
        else {
            tracing::warn!(key = kv.key, "ignoring a value that is not a registration");
            return;
        };
        let previous_ttl = self.seen.get(&kv.key).map(|s| s.ttl_ms);
        // The catalog first, then what was seen (see the reaper).
        let (_, deadline) = self.catalog.upsert(
            service.clone(),
            id.clone(),
            registration,
            record.registered_at,
            stamp,
        );
        self.seen.insert(
            kv.key.clone(),
            Seen {
                lease: kv.lease,
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                ttl_ms: record.ttl_ms,
                value: kv.value,
            },
        );
        // The queue already holds a deadline no later than this one unless
        // the instance is new to this replica or its TTL got shorter.
        if previous_ttl.is_none_or(|ttl| record.ttl_ms < ttl) {
            self.expiry.schedule(deadline, service, id);
        }
    }

    /// A key was deleted: deregistered, expired, or its etcd lease ended.
    fn delete(&self, kv: &Kv) {
        let Some((service, id)) = self.keys.parse(&kv.key) else {
            return;
        };
        self.seen.remove(&kv.key);
        self.catalog
            .remove(&service, &id, Stamp::At(kv.mod_revision));
    }
}

enum WatchEnd {
    Compacted,
    Broken { last: u64, error: String },
}
