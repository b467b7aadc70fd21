//! The etcd store: registry replicas sharing their state through an etcd
//! cluster.
//!
//! Each instance is a key `{prefix}{service}/{id}` attached to an etcd lease
//! of (about) its TTL. Every replica keeps a [`Catalog`] fed by an etcd
//! watch on the prefix and answers reads and blocking queries from it, so
//! reads never touch etcd. Indexes are etcd revisions, so every replica
//! gives a change the same index and a client can move between replicas.
//!
//! * register: grant a lease, put the key on it;
//! * heartbeat (any replica): keep the lease alive and rewrite the key (only
//!   if it is still the same incarnation), so that every replica's watch
//!   sees the renewal and moves its deadline;
//! * expiry: each replica tracks deadlines to the millisecond and deletes
//!   an overdue key (only if nobody renewed it meanwhile); the delete reaches
//!   every replica through the watch. The etcd lease, a little longer than
//!   the TTL, removes keys when no replica is running at all;
//! * deregister: revoke the lease, which deletes the key.
//!
//! When etcd is unreachable, writes fail with `store_unavailable`, reads go
//! on from the last view, and the watch resumes from the last revision it
//! saw (or re-reads the prefix if that history was compacted) when etcd is
//! back.

mod client;
mod feed;
mod record;

pub use client::{Change, EtcdClient, EtcdError, Kv, Watch, WatchMessage};

use super::{
    catalog::Stamp, clock::wall_clock_ms, expiry::ExpiryQueue, Catalog, Clock, Registered, Store,
    StoreError,
};
use crate::metrics::Metrics;
use beacon_wire::{Instance, InstanceId, Registration, ServiceName};
use dashmap::DashMap;
use record::{lease_seconds, Keys, Record};
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio_util::sync::{CancellationToken, DropGuard};

/// How long a replica keeps trying to read etcd at start-up before giving up.
const STARTUP_PATIENCE: Duration = Duration::from_secs(15);

/// How soon an overdue instance whose delete did not go through is checked again.
const RECHECK_MS: u64 = 1_000;

/// Registrations kept in etcd.
#[derive(Debug)]
pub struct EtcdStore {
    inner: Arc<Inner>,
    /// Stops the watch and expiry tasks when the store is dropped.
    _tasks: DropGuard,
}

#[derive(Debug)]
struct Inner {
    client: EtcdClient,
    keys: Keys,
    catalog: Catalog,
    expiry: ExpiryQueue,
    metrics: Arc<Metrics>,
    /// What this replica last saw at each key: the lease and revisions that
    /// heartbeats and expiry compare against.
    seen: DashMap<String, Seen>,
    /// Whether the watch is connected.
    watching: AtomicBool,
}

#[derive(Debug, Clone)]
struct Seen {
    lease: i64,
    create_revision: u64,
    mod_revision: u64,
    ttl_ms: u64,
    value: Vec<u8>,
}

impl EtcdStore {
    /// Connects to the cluster at `urls`, loads every instance under
    /// `prefix`, and starts following changes. Fails if etcd can't be read
    /// within a few seconds: a replica must not serve an empty view.
    pub async fn connect(
        urls: Vec<String>,
        prefix: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let inner = Arc::new(Inner {
            client: EtcdClient::new(urls),
            keys: Keys::new(prefix),
            catalog: Catalog::new(Clock::new(), Arc::clone(&metrics)),
            expiry: ExpiryQueue::default(),
            metrics,
            seen: DashMap::new(),
            watching: AtomicBool::new(false),
        });
        let revision = tokio::time::timeout(STARTUP_PATIENCE, inner.load_with_retries())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "no etcd member answered within {STARTUP_PATIENCE:?}"
                ))
            })?;
        let stop = CancellationToken::new();
        tokio::spawn(Arc::clone(&inner).follow(revision, stop.clone()));
        tokio::spawn(Arc::clone(&inner).reap(stop.clone()));
        Ok(Self {
            inner,
            _tasks: stop.drop_guard(),
        })
    }

    /// Whether the change feed from etcd is connected.
    pub fn watching(&self) -> bool {
        self.inner.watching.load(Ordering::Relaxed)
    }
}

impl Store for EtcdStore {
    async fn register(
        &self,
        service: ServiceName,
        id: InstanceId,
        registration: Registration,
    ) -> Result<Registered, StoreError> {
        let inner = &self.inner;
        let key = inner.keys.key(&service, &id);
        // Decided before writing: the watch may bring our own write back
        // before this call has applied it.
        let existed = inner.catalog.is_live(&service, &id);
        let record = Record::new(&registration, wall_clock_ms());
        let value =
            serde_json::to_vec(&record).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let lease = inner
            .client
            .grant(lease_seconds(registration.ttl))
            .await
            .map_err(unavailable)?;
        let revision = inner
            .client
            .put(&key, &value, lease)
            .await
            .map_err(unavailable)?;
        let seen = Seen {
            lease,
            create_revision: 0, // learnt from the watch
            mod_revision: revision,
            ttl_ms: record.ttl_ms,
            value,
        };
        // Unless the watch already brought this very write (or a later one).
        let replaced = match inner.seen.entry(key) {
            dashmap::Entry::Occupied(entry) if entry.get().mod_revision >= revision => None,
            dashmap::Entry::Occupied(mut entry) => Some(entry.insert(seen)),
            dashmap::Entry::Vacant(entry) => {
                entry.insert(seen);
                None
            }
        };
        if let Some(old) = replaced.filter(|old| old.lease != lease) {
            // The key now lives on the new lease; free the old one.
            let client_lease = old.lease;
            let this = Arc::clone(inner);
            tokio::spawn(async move {
                let _ = this.client.revoke(client_lease).await;
            });
        }
        let (outcome, deadline) = inner.catalog.upsert(
            service.clone(),
            id.clone(),
            registration,
            record.registered_at,
            Stamp::At(revision),
        );
        inner.expiry.schedule(deadline, service, id);
        Ok(match outcome {
            Registered::Created(instance) | Registered::Replaced(instance) if existed => {
                Registered::Replaced(instance)
            }
            Registered::Created(instance) | Registered::Replaced(instance) => {
                Registered::Created(instance)
            }
        })
    }

    async fn heartbeat(
        &self,
        service: &ServiceName,
        id: &InstanceId,
    ) -> Result<Instance, StoreError> {
        let inner = &self.inner;
        let unknown = || unknown_instance(service, id);
        // Refuse a lapsed lease before asking etcd anything.
        let (key, seen) = inner.live(service, id)?;
        if !inner
            .client
            .keep_alive(seen.lease)
            .await
            .map_err(unavailable)?
        {
            return Err(unknown());
        }
        // Rewriting the key tells every replica's watch about the renewal.
        let same = if seen.create_revision == 0 {
            // Registered here a moment ago and not yet seen on the watch.
            inner
                .client
                .put(&key, &seen.value, seen.lease)
                .await
                .map_err(unavailable)?;
            true
        } else {
            inner
                .client
                .put_if_same(&key, &seen.value, seen.lease, seen.create_revision)
                .await
                .map_err(unavailable)?
        };
        if !same {
            return Err(unknown());
        }
        inner.catalog.renew(service, id)
    }

    async fn deregister(&self, service: &ServiceName, id: &InstanceId) -> Result<(), StoreError> {
        let inner = &self.inner;
        let (key, seen) = inner.live(service, id)?;
        let revision = inner.client.revoke(seen.lease).await.map_err(unavailable)?;
        // The watch brings the delete to every replica (maybe to this one
        // already); apply it here too, so the next read agrees with the answer.
        inner.seen.remove(&key);
        inner.catalog.remove(service, id, Stamp::At(revision));
        Ok(())
    }

    fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.inner.client.status().await.map_err(unavailable)?;
        if !self.watching() {
            return Err(StoreError::Unavailable(
                "the etcd watch is reconnecting".into(),
            ));
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "etcd"
    }
}

impl Inner {
    /// The key and last-seen state of a registered instance whose lease has
    /// not run out; `UnknownInstance` otherwise.
    fn live(&self, service: &ServiceName, id: &InstanceId) -> Result<(String, Seen), StoreError> {
        let key = self.keys.key(service, id);
        let seen = self.seen.get(&key).map(|s| s.clone());
        match seen {
            Some(seen) if self.catalog.is_live(service, id) => Ok((key, seen)),
            _ => Err(unknown_instance(service, id)),
        }
    }

    /// Deletes overdue instances from etcd, as their deadlines come.
    async fn reap(self: Arc<Self>, stop: CancellationToken) {
        let clock = self.catalog.clock();
        while let Some(groups) = self.expiry.next_due(clock, &stop).await {
            for (service, ids) in groups {
                let (expired, renewed) = self.catalog.due(&service, &ids);
                self.expiry.requeue(&service, renewed);
                let mut recheck = Vec::new();
                for id in expired {
                    let key = self.keys.key(&service, &id);
                    let Some(mod_revision) = self.seen.get(&key).map(|s| s.mod_revision) else {
                        continue; // already gone
                    };
                    // Not deleted (renewed meanwhile, or etcd away) or deleted:
                    // either way look again soon; the watch tells what happened.
                    if let Ok(true) = self.client.delete_if_unchanged(&key, mod_revision).await {
                        tracing::info!(%service, %id, "lease expired");
                        self.metrics.expirations.inc();
                    }
                    recheck.push((id, clock.now_ms() + RECHECK_MS));
                }
                self.expiry.requeue(&service, recheck);
            }
        }
    }
}

fn unknown_instance(service: &ServiceName, id: &InstanceId) -> StoreError {
    StoreError::UnknownInstance {
        service: service.clone(),
        id: id.clone(),
    }
}

fn unavailable(error: EtcdError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}
