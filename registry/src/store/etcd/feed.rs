//! Following etcd: the initial load, the watch, and re-reads after
//! compaction or an outage.

use super::{
    client::Kv,
    leases::SeenLease,
    record::{KeyKind, Keys, LeaseRecord, Record},
    watch::{Change, WatchMessage},
    Inner, Seen,
};
use crate::store::catalog::Stamp;
use beacon_net::backoff::Backoff;
use beacon_wire::{InstanceId, LeaseId, ServiceName};
use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::Ordering, Arc},
    time::Duration,
};
use tokio_util::sync::CancellationToken;

impl Inner {
    /// Reads every instance under the prefix, retrying until etcd answers
    /// (a replica starting). Returns the revision read at.
    pub(super) async fn load_with_retries(self: &Arc<Self>) -> u64 {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            match self.load(Load::Start).await {
                Ok(revision) => return revision,
                Err(e) => {
                    tracing::warn!("cannot read etcd yet: {e}");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Replaces the view with what etcd holds now; returns the revision.
    async fn load(self: &Arc<Self>, load: Load) -> Result<u64, super::EtcdError> {
        let (revision, kvs) = self.client.range_prefix(self.keys.prefix()).await?;
        let mut instances = Vec::new();
        let mut index_keys = HashMap::new();
        let mut leases = HashSet::new();
        for kv in kvs {
            match self.keys.kind(&kv.key) {
                Some(KeyKind::Instance(service, id)) => instances.push((service, id, kv)),
                Some(KeyKind::Index(service)) => {
                    index_keys.insert(service, kv.mod_revision);
                }
                // Leases first: their instances join them.
                Some(KeyKind::Lease(lease)) => {
                    self.put_lease(lease.clone(), kv);
                    leases.insert(lease);
                }
                None => {}
            }
        }
        for held in self.catalog.leases() {
            if !leases.contains(&held.lease) {
                self.lost_lease(&held.lease, revision);
            }
        }
        // Starting, a service's index is its index key's revision, as on
        // every running replica. Re-reading (history compacted away), a
        // change found here is one this replica missed: the read's revision
        // moves its watchers on, and [`Self::record_index`] settles it.
        let stamp = |service: &ServiceName| match load {
            Load::Start => Stamp::At(index_keys.get(service).copied().unwrap_or(revision)),
            Load::Again => Stamp::At(revision),
        };
        let present: HashSet<String> = instances.iter().map(|(_, _, kv)| kv.key.clone()).collect();
        let mut touched: HashSet<ServiceName> = HashSet::new();
        for (service, id, kv) in instances {
            let stamp = stamp(&service);
            self.put(service.clone(), id, kv, stamp);
            touched.insert(service);
        }
        for (service, id) in self.catalog.keys() {
            let key = self.keys.key(&service, &id);
            if !present.contains(&key) {
                self.seen.remove(&key);
                self.catalog.remove(&service, &id, Stamp::At(revision));
                touched.insert(service);
            }
        }
        for (service, mod_revision) in index_keys {
            self.index_keys.insert(service.clone(), mod_revision);
            self.catalog.raise_index(&service, mod_revision);
        }
        for service in touched {
            self.record_index(&service);
        }
        // What changes come from now on are logged; a watcher behind a
        // service's index as read here (it may have missed changes) starts
        // again from a snapshot.
        self.catalog.restart_logs();
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
                match self.load(Load::Again).await {
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
    async fn watch_from(self: &Arc<Self>, mut revision: u64) -> WatchEnd {
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
                    let mut touched = HashSet::new();
                    for change in lease_ends_first(changes, &self.keys) {
                        revision = revision.max(match &change {
                            Change::Put(kv) | Change::Delete(kv) => kv.mod_revision,
                        });
                        if let Some(service) = self.apply(change) {
                            touched.insert(service);
                        }
                    }
                    // After the whole batch: a transaction's index key
                    // write comes in the same batch as its instance's.
                    for service in touched {
                        self.record_index(&service);
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

    /// Applies one change; the service whose members it touched, if any.
    fn apply(&self, change: Change) -> Option<ServiceName> {
        let (Change::Put(kv) | Change::Delete(kv)) = &change;
        match (self.keys.kind(&kv.key)?, change) {
            (KeyKind::Instance(service, id), Change::Put(kv)) => {
                let stamp = Stamp::At(kv.mod_revision);
                self.put(service.clone(), id, kv, stamp);
                Some(service)
            }
            (KeyKind::Instance(service, id), Change::Delete(kv)) => {
                self.delete(&service, &id, &kv);
                Some(service)
            }
            (KeyKind::Index(service), Change::Put(kv)) => {
                self.index_keys.insert(service.clone(), kv.mod_revision);
                self.catalog.raise_index(&service, kv.mod_revision);
                None
            }
            (KeyKind::Index(service), Change::Delete(_)) => {
                // Deleted by hand: written again at the next change.
                self.index_keys.remove(&service);
                None
            }
            (KeyKind::Lease(lease), Change::Put(kv)) => {
                self.put_lease(lease, kv);
                None
            }
            (KeyKind::Lease(lease), Change::Delete(kv)) => {
                self.lost_lease(&lease, kv.mod_revision);
                None
            }
        }
    }

    /// If the catalog's index of `service` is past its index key — a change
    /// etcd made by itself (a lease ran out), or one this replica judged
    /// differently (a heartbeat bringing back an instance it had counted
    /// out) — writes the index key, compared against the revision seen, so
    /// that every replica, and any that starts later, settles on that
    /// write's revision. A replica behind on the index key just loses the
    /// compare.
    fn record_index(self: &Arc<Self>, service: &ServiceName) {
        let seen = self.index_keys.get(service).map_or(0, |r| *r);
        if self.catalog.index(service) <= seen || self.catalog.is_frozen() {
            return;
        }
        let this = Arc::clone(self);
        let index_key = self.keys.index_key(service);
        tokio::spawn(async move {
            if let Err(e) = this.client.touch_index_if(&index_key, seen).await {
                tracing::warn!(index_key, "cannot record a change etcd made by itself: {e}");
            }
        });
    }

    /// `service`/`id`'s key was written: a registration, a
    /// re-registration or a heartbeat.
    fn put(&self, service: ServiceName, id: InstanceId, kv: Kv, stamp: Stamp) {
        let Some((record, registration)) = serde_json::from_slice::<Record>(&kv.value)
            .ok()
            .and_then(|r| r.registration().map(|reg| (r, reg)))
        else {
            tracing::warn!(key = kv.key, "ignoring a value that is not a registration");
            return;
        };
        let previous_ttl = self.seen.get(&kv.key).map(|s| s.ttl_ms);
        // The catalog first, then what was seen (see the reaper).
        let upserted = self.catalog.upsert(
            service.clone(),
            id.clone(),
            registration,
            record.origin(),
            stamp,
        );
        let deadline = match upserted {
            Ok((_, deadline)) => deadline,
            Err(e) => {
                // Its shared lease ended before this write came: etcd
                // removes the key with the lease, and nobody reads it here.
                tracing::info!(
                    key = kv.key,
                    "ignoring an instance on a lease that ended: {e}"
                );
                return;
            }
        };
        self.seen.insert(
            kv.key.clone(),
            Seen {
                lease: kv.lease,
                shared: record.lease.clone(),
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                ttl_ms: record.ttl_ms,
                value: kv.value,
            },
        );
        // The queue already holds a deadline no later than this one unless
        // the instance is new to this replica or its TTL got shorter.
        if let Some(deadline) =
            deadline.filter(|_| previous_ttl.is_none_or(|ttl| record.ttl_ms < ttl))
        {
            self.expiry.schedule(deadline, service, id);
        }
    }

    /// A shared lease's key was written: granted, or kept alive.
    fn put_lease(&self, lease: LeaseId, kv: Kv) {
        let Ok(record) = serde_json::from_slice::<LeaseRecord>(&kv.value) else {
            tracing::warn!(key = kv.key, "ignoring a value that is not a lease");
            return;
        };
        let seen = SeenLease {
            etcd_lease: kv.lease,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            value: kv.value,
        };
        self.saw_lease(lease, &record, seen);
    }

    /// `service`/`id`'s key was deleted: deregistered, expired, or its etcd
    /// lease ended.
    fn delete(&self, service: &ServiceName, id: &InstanceId, kv: &Kv) {
        self.seen.remove(&kv.key);
        self.catalog.remove(service, id, Stamp::At(kv.mod_revision));
    }
}

/// A watch batch with, within each revision, shared leases' deletions
/// first: a revoked lease's instance keys go in the same revision as its
/// own key, in no set order, and ending the lease first removes them all
/// in one batch per service (one change index, one wake); their own
/// deletions then find nothing left.
fn lease_ends_first(mut changes: Vec<Change>, keys: &Keys) -> Vec<Change> {
    let rank = |change: &Change| match change {
        Change::Delete(kv) if matches!(keys.kind(&kv.key), Some(KeyKind::Lease(_))) => {
            (kv.mod_revision, 0)
        }
        Change::Put(kv) | Change::Delete(kv) => (kv.mod_revision, 1),
    };
    // Stable: the order within a revision is otherwise kept.
    changes.sort_by_key(rank);
    changes
}

/// Why the view is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// The replica is starting: its view is empty.
    Start,
    /// The watch lost history (compacted): the view may be missing changes.
    Again,
}

enum WatchEnd {
    Compacted,
    Broken { last: u64, error: String },
}
