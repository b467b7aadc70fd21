//! The etcd store: registry replicas sharing their state through an etcd
//! cluster.
//!
//! Each instance is a key `{prefix}{service}/{id}` attached to an etcd lease
//! of (about) its TTL. Every replica keeps a [`Catalog`] fed by an etcd
//! watch on the prefix and answers reads and blocking queries from it, so
//! reads never touch etcd. Indexes are etcd revisions, so every replica
//! gives a change the same index and a client can move between replicas.
//!
//! * register: grant a lease, put the key on it (and touch the service's
//!   index key in the same transaction, as every membership change does);
//! * heartbeat (any replica): keep the lease alive and rewrite the key (only
//!   if it is still the same incarnation), so that every replica's watch
//!   sees the renewal and moves its deadline;
//! * expiry: each replica tracks deadlines to the millisecond and deletes
//!   an overdue key with a compare-and-delete on the revision it had seen
//!   *before* it judged the key overdue, so a registration or heartbeat
//!   that etcd took meanwhile (a new revision) is never undone by a
//!   decision made before it; the delete reaches every replica through the
//!   watch. The etcd lease, a little longer than the TTL, removes keys
//!   when no replica is running at all;
//! * deregister: delete the key, then revoke its lease;
//! * shared leases (see `leases`): an etcd lease with a key of its own,
//!   which every instance registered on it shares.
//!
//! Indexes are etcd revisions only: nothing here stamps a change with a
//! count of its own, so no replica's index can jump past etcd's. A
//! service's index is the revision of its index key (`{prefix}{service}`),
//! which every membership change writes in its own transaction, so a
//! replica that starts (or restarts) reads the same index the running ones
//! hold. A change etcd makes by itself — a lease running out while no
//! replica expired the key — has no index key write; the first replica to
//! see it touches the index key (compare-and-put on the revision it saw),
//! and every replica moves to that revision.
//!
//! When etcd can't take writes (unreachable, or no quorum — a linearizable
//! read every half second tells), lease time stands still on the replica
//! ([`Catalog::freeze`]): nobody can renew a lease, so none runs out, as in
//! etcd itself; reads go on from the last view; writes and
//! `/_health?deep=true` answer `503 store_unavailable`. When etcd answers
//! again every deadline moves on by the outage ([`Catalog::thaw`]), as etcd
//! extends its leases on electing a leader, and the watch resumes from the
//! last revision it saw (or re-reads the prefix if that history was
//! compacted).

mod client;
mod feed;
mod leases;
mod record;
mod watch;

pub use client::{EtcdClient, EtcdError, Kv};
pub use watch::{Change, Watch, WatchMessage};

use super::{
    catalog::Stamp, clock::wall_clock_ms, expiry::ExpiryQueue, Catalog, Clock, Origin, Owner,
    Registered, Store, StoreError,
};
use crate::metrics::Metrics;
use beacon_wire::{
    Instance, InstanceId, LeaseGrant, LeaseId, LeaseStatus, Registration, ServiceName,
};
use dashmap::DashMap;
use leases::{lease_gone, SeenLease};
use record::{lease_seconds, Keys, Record};
use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio_util::sync::{CancellationToken, DropGuard};

/// How long a replica keeps trying to read etcd at start-up before giving up.
const STARTUP_PATIENCE: Duration = Duration::from_secs(15);

/// How soon an overdue instance whose delete did not go through is checked again.
const RECHECK_MS: u64 = 1_000;

/// How often a replica asks etcd for a linearizable read, to know whether
/// it can take writes (and whether lease time runs).
const QUORUM_CHECK: Duration = Duration::from_millis(500);

/// How long one member may take over that read before the next is asked
/// (and, when none answers in time, etcd counts as without a quorum): a
/// member cut off from its leader may hold a read for seconds before it
/// says so, and by then short leases would have run out here.
const QUORUM_PATIENCE: Duration = Duration::from_millis(500);

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
    /// What this replica last saw of each shared lease's key.
    leases_seen: DashMap<LeaseId, SeenLease>,
    /// The mod revision of each service's index key as this replica last
    /// saw it: a catalog index above it is a change etcd made by itself
    /// (a lease ran out), which the replica then records on the index key.
    index_keys: DashMap<ServiceName, u64>,
    /// Whether the watch is connected.
    watching: AtomicBool,
    /// When (catalog clock ms) etcd last took a linearizable read: lease
    /// time stands still from then when it turns out to have no quorum.
    quorum_seen_ms: AtomicU64,
}

#[derive(Debug, Clone)]
struct Seen {
    lease: i64,
    /// The shared lease the instance lives on, if any: its etcd lease is
    /// then that lease's, not the instance's to revoke.
    shared: Option<LeaseId>,
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
            catalog: Catalog::of_revisions(Clock::new(), Arc::clone(&metrics)),
            expiry: ExpiryQueue::default(),
            metrics,
            seen: DashMap::new(),
            leases_seen: DashMap::new(),
            index_keys: DashMap::new(),
            watching: AtomicBool::new(false),
            quorum_seen_ms: AtomicU64::new(0),
        });
        let revision = tokio::time::timeout(STARTUP_PATIENCE, inner.load_with_retries())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "no etcd member answered within {STARTUP_PATIENCE:?}"
                ))
            })?;
        // The load was a linearizable read.
        let loaded = inner.catalog.clock().now_ms();
        inner.quorum_seen_ms.store(loaded, Ordering::Release);
        let stop = CancellationToken::new();
        tokio::spawn(Arc::clone(&inner).follow(revision, stop.clone()));
        tokio::spawn(Arc::clone(&inner).reap(stop.clone()));
        tokio::spawn(Arc::clone(&inner).check_quorum(stop.clone()));
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
    async fn register_as(
        &self,
        service: ServiceName,
        id: InstanceId,
        registration: Registration,
        owner: Option<Owner>,
    ) -> Result<Registered, StoreError> {
        let inner = &self.inner;
        inner.writable()?;
        let key = inner.keys.key(&service, &id);
        // Decided before writing: the watch may bring our own write back
        // before this call has applied it.
        let existed = inner.catalog.is_live(&service, &id);
        let origin = Origin {
            registered_at: inner
                .catalog
                .next_registered_at(&service, &id, wall_clock_ms()),
            owner,
        };
        let record = Record::new(&registration, &origin);
        let value =
            serde_json::to_vec(&record).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let shared = registration.lease.clone();
        let lease = match &shared {
            Some(lease) => inner.etcd_lease_of(lease)?,
            None => inner
                .client
                .grant(lease_seconds(registration.ttl))
                .await
                .map_err(|e| inner.unavailable(e))?,
        };
        let revision = inner
            .client
            .put_member(&key, &value, lease, &inner.keys.index_key(&service))
            .await
            .map_err(|e| match (&shared, lease_gone(&e)) {
                (Some(lease), true) => StoreError::UnknownLease(lease.clone()),
                _ => inner.unavailable(e),
            })?;
        // The catalog first, then what was seen: the reaper reads what was
        // seen first, so it never pairs this write's revision with the old
        // lease's deadline.
        let (outcome, deadline) = inner.catalog.upsert(
            service.clone(),
            id.clone(),
            registration,
            origin,
            Stamp::At(revision),
        )?;
        let seen = Seen {
            lease,
            shared,
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
        if let Some(old) = replaced.filter(|old| old.lease != lease && old.shared.is_none()) {
            // The key now lives on the new lease; free the old one.
            let client_lease = old.lease;
            let this = Arc::clone(inner);
            tokio::spawn(async move {
                let _ = this.client.revoke(client_lease).await;
            });
        }
        if let Some(deadline) = deadline {
            inner.expiry.schedule(deadline, service, id);
        }
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
        inner.writable()?;
        let unknown = || unknown_instance(service, id);
        // Refuse a lapsed lease before asking etcd anything.
        let (key, seen) = inner.live(service, id)?;
        if let Some(lease) = &seen.shared {
            // Renewing an instance on a shared lease renews the lease.
            inner.keep_lease(lease).await.map_err(|e| match e {
                StoreError::UnknownLease(_) => unknown(),
                other => other,
            })?;
            return inner.catalog.renew_live(service, id);
        }
        if !inner
            .client
            .keep_alive(seen.lease)
            .await
            .map_err(|e| inner.unavailable(e))?
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
                .map_err(|e| inner.unavailable(e))?;
            true
        } else {
            inner
                .client
                .put_if_same(&key, &seen.value, seen.lease, seen.create_revision)
                .await
                .map_err(|e| inner.unavailable(e))?
        };
        if !same {
            return Err(unknown());
        }
        inner.catalog.renew_live(service, id)
    }

    async fn deregister(&self, service: &ServiceName, id: &InstanceId) -> Result<(), StoreError> {
        let inner = &self.inner;
        inner.writable()?;
        let (key, seen) = inner.live(service, id)?;
        let deleted = inner
            .client
            .delete_member(&key, &inner.keys.index_key(service))
            .await
            .map_err(|e| inner.unavailable(e))?;
        let Some((revision, lease)) = deleted else {
            return Err(unknown_instance(service, id));
        };
        // The watch brings the delete to every replica (maybe to this one
        // already); apply it here too, so the next read agrees with the answer.
        inner.seen.remove(&key);
        inner.catalog.remove(service, id, Stamp::At(revision));
        if lease != 0 && seen.shared.is_none() {
            // Frees the lease now rather than when it runs out.
            let this = Arc::clone(inner);
            tokio::spawn(async move {
                let _ = this.client.revoke(lease).await;
            });
        }
        Ok(())
    }

    async fn grant_as(
        &self,
        ttl: Duration,
        owner: Option<Owner>,
    ) -> Result<LeaseGrant, StoreError> {
        self.inner.grant_lease(ttl, owner).await
    }

    async fn keep_alive(&self, lease: &LeaseId) -> Result<LeaseStatus, StoreError> {
        self.inner.keep_lease(lease).await
    }

    async fn revoke(&self, lease: &LeaseId) -> Result<(), StoreError> {
        self.inner.end_lease(lease).await
    }

    fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.inner.writable()?;
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
        while let Some(due) = self.expiry.next_due(clock, &stop).await {
            for lease in due.leases {
                if let Some(again) = self.expire_lease(&lease).await {
                    self.expiry.schedule_lease(again, lease);
                }
            }
            for (service, ids) in due.instances {
                if self.catalog.is_frozen() {
                    // No lease runs out while etcd can't take writes.
                    let later = clock.now_ms() + RECHECK_MS;
                    self.expiry
                        .requeue(&service, ids.into_iter().map(|id| (id, later)).collect());
                    continue;
                }
                // The revisions first, then the deadlines (writers update
                // them the other way round): a write etcd took after a
                // revision read here fails the compare-and-delete below.
                let seen: Vec<Option<u64>> = ids
                    .iter()
                    .map(|id| {
                        let key = self.keys.key(&service, id);
                        self.seen.get(&key).map(|s| s.mod_revision)
                    })
                    .collect();
                let (expired, renewed) = self.catalog.due(&service, &ids);
                self.expiry.requeue(&service, renewed);
                let mut recheck = Vec::new();
                for id in expired {
                    let key = self.keys.key(&service, &id);
                    let at = ids.iter().position(|i| *i == id);
                    let Some(mod_revision) = at.and_then(|at| seen[at]) else {
                        continue; // already gone
                    };
                    // Not deleted (renewed meanwhile, or etcd away) or deleted:
                    // either way look again soon; the watch tells what happened.
                    let index_key = self.keys.index_key(&service);
                    let delete =
                        self.client
                            .delete_member_if_unchanged(&key, mod_revision, &index_key);
                    if let Ok(true) = delete.await {
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

impl Inner {
    /// Refuses a write at once while etcd can't take writes (lease time
    /// stands still): a caller learns it in milliseconds, not after every
    /// member's timeout, and the quorum check finds etcd again.
    fn writable(&self) -> Result<(), StoreError> {
        if self.catalog.is_frozen() {
            return Err(StoreError::Unavailable(
                "etcd can't take writes from this replica (no quorum reachable); leases stand still until it can"
                    .into(),
            ));
        }
        Ok(())
    }

    /// An etcd call failed: when no member could take it, lease time
    /// stands still until the quorum check finds etcd again.
    fn unavailable(&self, error: EtcdError) -> StoreError {
        let since = self.quorum_seen_ms.load(Ordering::Acquire);
        if matches!(error, EtcdError::Unavailable(_)) && self.catalog.freeze(since) {
            tracing::warn!(
                "etcd can't take writes ({error}): leases stand still from its last answer, {} ms ago",
                self.catalog.clock().now_ms().saturating_sub(since)
            );
        }
        StoreError::Unavailable(error.to_string())
    }

    /// Asks etcd for a linearizable read every [`QUORUM_CHECK`]: one that
    /// fails (no member reachable, or none with a quorum behind it) stops
    /// lease time; one that succeeds starts it again, every deadline moved
    /// on by the outage.
    async fn check_quorum(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(QUORUM_CHECK) => {}
            }
            let asked = self.catalog.clock().now_ms();
            let read = tokio::select! {
                _ = stop.cancelled() => return,
                read = self.client.quorum_read(self.keys.prefix(), QUORUM_PATIENCE) => read,
            };
            match read {
                Ok(()) => {
                    self.quorum_seen_ms.fetch_max(asked, Ordering::AcqRel);
                    if let Some(stood) = self.catalog.thaw() {
                        tracing::info!(
                            "etcd takes writes again: leases run again, every deadline moved on by {} ms",
                            stood.as_millis()
                        );
                    }
                }
                Err(e) => drop(self.unavailable(e)),
            }
        }
    }
}
