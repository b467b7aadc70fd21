//! The in-memory view of every service: members, leases, indexes, watchers.

use super::{
    clock::{millis, wall_clock_ms},
    Clock, Owner, Registered, StoreError,
};
use crate::metrics::{Metrics, ParkedWatcher};
use beacon_wire::{
    Instance, InstanceId, LeaseId, Registration, ServiceChanges, ServiceInstances, ServiceList,
    ServiceName, ServiceSummary,
};
use change_log::{ChangeLog, Logged, Since};
use dashmap::DashMap;
use member::{live_instances, Deadline, Member, Stored};
use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
    },
    time::Duration,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

mod change_log;
mod encoded;
mod lease_time;
mod leases;
mod limits;
mod member;
mod subscription;
mod subsets;

pub use limits::Full;
pub use subscription::Subscription;

use leases::SharedLease;

/// Every service's live members, with a change index per service that
/// blocking queries wait on.
///
/// Concurrency: the service map is a `DashMap`; each service's members sit
/// behind their own `RwLock`, always taken *while* the map guard is held and
/// never across an `.await`. Lease deadlines are atomics, so a heartbeat —
/// the most frequent write — needs only a read lock.
///
/// Indexes come from one registry-wide counter, so a service's index never
/// goes back, even if the service disappears and returns. The counter starts
/// at the wall-clock milliseconds of start-up, so a restarted registry hands
/// out indexes above the ones its clients held before the restart and no
/// watcher can mistake the new state for the one it already has.
#[derive(Debug)]
pub struct Catalog {
    services: DashMap<ServiceName, ServiceEntry>,
    /// Shared leases, each with the deadline its members share. Lock
    /// order: a lease's guard is never taken while a service's is held.
    leases: DashMap<LeaseId, SharedLease>,
    last_index: AtomicU64,
    clock: Clock,
    /// While the backing store can't be reached, lease time stands still
    /// at this [`Clock`] millisecond (`u64::MAX`: it runs), as etcd's own
    /// leases do without a quorum: nobody can renew a lease then, so none
    /// may run out. See [`Catalog::freeze`].
    frozen_at: AtomicU64,
    /// The changes after this index are in the services' change logs; a
    /// watcher behind it gets a snapshot. The start index for a catalog
    /// that counts its own; for one fed by a backing store, `u64::MAX`
    /// until its first load ([`restart_logs`](Self::restart_logs)), then 0
    /// (each service's log says how far back it goes).
    logged_from: AtomicU64,
    metrics: Arc<Metrics>,
    /// How many instances it takes.
    limits: limits::Limits,
}

/// Where a registration comes from: when it was made and by whom.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Wall-clock milliseconds of the registration (set by the replica
    /// that took it, so every replica reports the same).
    pub registered_at: u64,
    /// The token that made it, under an ACL.
    pub owner: Option<Owner>,
}

/// Where a change's index comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// The next value of this catalog's own counter (the memory store).
    Next,
    /// A revision of the backing store (etcd), so that every replica gives
    /// the same change the same index.
    At(u64),
}

/// One service: its members, the watch channel of its index, and its
/// recent changes.
#[derive(Debug)]
struct ServiceEntry {
    members: RwLock<BTreeMap<InstanceId, Member>>,
    /// The service's current index. Sending wakes every parked watcher at
    /// once, with no task or timer per watcher.
    index: watch::Sender<u64>,
    /// Written with `members` write-locked, read with it read-locked, so
    /// the two always agree.
    log: Mutex<ChangeLog>,
    /// The clients (by lease) that asked for a subset of this service
    /// here.
    subsets: subsets::SubsetClients,
    /// The list read as last encoded.
    made: encoded::MadeAnswer,
    /// The changes read as last encoded.
    delta: encoded::MadeDelta,
    /// Its members as last counted into the registry's total.
    counted: AtomicUsize,
}

impl Catalog {
    /// An empty catalog that counts its own indexes (the memory store).
    pub fn new(clock: Clock, metrics: Arc<Metrics>) -> Self {
        let start = wall_clock_ms();
        Self::starting_at(start, start, clock, metrics)
    }

    /// An empty catalog whose every index is a backing store's revision
    /// ([`Stamp::At`]), so the registry-wide index starts from nothing;
    /// its changes are logged once the store says it has loaded
    /// ([`restart_logs`](Self::restart_logs)).
    pub fn of_revisions(clock: Clock, metrics: Arc<Metrics>) -> Self {
        Self::starting_at(0, u64::MAX, clock, metrics)
    }

    fn starting_at(index: u64, logged_from: u64, clock: Clock, metrics: Arc<Metrics>) -> Self {
        Self {
            services: DashMap::new(),
            leases: DashMap::new(),
            last_index: AtomicU64::new(index),
            clock,
            frozen_at: AtomicU64::new(u64::MAX),
            logged_from: AtomicU64::new(logged_from),
            metrics,
            limits: limits::Limits::default(),
        }
    }

    /// Starts every service's change log afresh at the service's present
    /// index: a backing store has just read its whole state, and what it
    /// changed on the way is no log of what happened. A watcher at a
    /// service's present index is up to date (indexes are the store's, the
    /// same on every replica); one behind it gets a snapshot.
    pub fn restart_logs(&self) {
        for entry in self.services.iter() {
            let _members = write(&entry.members);
            *lock(&entry.log) = ChangeLog::starting_at(*entry.index.borrow());
        }
        self.logged_from.store(0, Ordering::Release);
    }

    /// A new service entry, its log starting at the present index.
    fn new_entry(&self) -> ServiceEntry {
        ServiceEntry::new(self.last_index.load(Ordering::Acquire))
    }

    /// The clock that lease deadlines are measured on.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Registers or replaces `id`, starting a lease of its TTL from now.
    /// Returns what happened and the lease's deadline. The index rises (to
    /// `stamp`) when the instance is new (or its old lease had run out) or
    /// its address or metadata changed; a refresh that changes nothing wakes
    /// no watcher.
    ///
    /// A registration on a shared lease joins it (`UnknownLease` if there
    /// is none) and gets no deadline of its own: the lease's expiry
    /// removes it.
    pub fn upsert(
        &self,
        service: ServiceName,
        id: InstanceId,
        registration: Registration,
        origin: Origin,
        stamp: Stamp,
    ) -> Result<(Registered, Option<u64>), StoreError> {
        let now = self.now();
        let (ttl_ms, deadline, own_deadline, lease) = match &registration.lease {
            None => {
                let ttl_ms = millis(registration.ttl);
                let at = now.saturating_add(ttl_ms);
                (ttl_ms, Deadline::Own(AtomicU64::new(at)), Some(at), None)
            }
            Some(lease) => {
                let attached = self.attach(lease, &service, &id)?;
                let deadline = Deadline::Shared(attached.deadline);
                // The lease's own id: one copy of it, however many join.
                (attached.ttl_ms, deadline, None, Some(attached.lease))
            }
        };
        let entry = self
            .services
            .entry(service.clone())
            .or_insert_with(|| self.new_entry());
        let mut members = write(&entry.members);
        let previous = members.get(&id).filter(|m| m.deadline() > now);
        let created = previous.is_none();
        let changed = previous.is_none_or(|m| {
            m.address != registration.address || m.metadata != registration.metadata
        });
        let changed = changed || previous.is_some_and(|m| m.lease != lease);
        let member = Member::new(
            Stored {
                address: registration.address,
                metadata: registration.metadata,
                ttl_ms,
                registered_at: origin.registered_at,
                lease,
                owner: origin.owner,
            },
            deadline,
        );
        let instance = member.to_instance(&service, &id, now);
        if let Some(lease) = member
            .lease
            .as_ref()
            .filter(|_| member.deadline() == leases::ENDED)
        {
            // Its lease ended while it joined: ending walked the lease's
            // members before this one was in, so it must not stay.
            return Err(StoreError::UnknownLease(lease.clone()));
        }
        let replaced = members.get(&id).map(|old| old.lease.clone());
        let put = changed.then(|| Logged::put(&id, &member, instance.expires_in_ms));
        members.insert(id.clone(), member);
        if let Some(put) = put {
            self.bump(&service, &entry, members.len(), stamp, [put]);
        }
        drop(members);
        drop(entry);
        if let Some(old) = replaced.filter(|old| *old != instance.lease) {
            self.detach(old.as_ref(), &service, &id);
        }
        let outcome = if created {
            Registered::Created(instance)
        } else {
            Registered::Replaced(instance)
        };
        Ok((outcome, own_deadline))
    }

    /// Renews the lease of `id` by its TTL. An instance whose lease already
    /// ran out is removed (if the reaper has not got to it yet) and reported
    /// unknown, so its owner registers again.
    pub fn renew(&self, service: &ServiceName, id: &InstanceId) -> Result<Instance, StoreError> {
        match self.renew_if_live(service, id)? {
            (instance, true) => Ok(instance),
            (_, false) => {
                self.expire_due(service, std::slice::from_ref(id));
                Err(unknown_instance(service, id))
            }
        }
    }

    /// Renews the lease of `id` by its TTL, for a store that decides
    /// expiry itself (etcd, which has just accepted the renewal): changes
    /// no membership and no index. A member already past its deadline here
    /// is left as it is — hidden — and the store's change feed brings it
    /// back with an index of the store's, so watchers see the change; the
    /// answer then says its lease runs a whole TTL, as the store holds it.
    pub fn renew_live(
        &self,
        service: &ServiceName,
        id: &InstanceId,
    ) -> Result<Instance, StoreError> {
        let (mut instance, _) = self.renew_if_live(service, id)?;
        instance.expires_in_ms = instance.ttl_ms;
        Ok(instance)
    }

    /// Moves `id`'s deadline on by its TTL if its lease has not run out;
    /// the instance as it then stands, and whether it was live.
    fn renew_if_live(
        &self,
        service: &ServiceName,
        id: &InstanceId,
    ) -> Result<(Instance, bool), StoreError> {
        let now = self.now();
        let entry = self
            .services
            .get(service)
            .ok_or_else(|| unknown_instance(service, id))?;
        let members = read(&entry.members);
        let member = members
            .get(id)
            .ok_or_else(|| unknown_instance(service, id))?;
        let live = member.deadline() > now;
        if live {
            // On a shared lease this renews the lease, and so every
            // instance on it.
            member
                .deadline
                .cell()
                .store(now.saturating_add(member.ttl_ms), Ordering::Relaxed);
        }
        Ok((member.to_instance(service, id, now), live))
    }

    /// Removes `id` now, waking watchers with index `stamp`. Returns whether
    /// it was there with a live lease.
    pub fn remove(&self, service: &ServiceName, id: &InstanceId, stamp: Stamp) -> bool {
        let now = self.now();
        let Some(entry) = self.services.get(service) else {
            return false;
        };
        let mut members = write(&entry.members);
        let Some(gone) = members.remove(id) else {
            return false;
        };
        let delete = Logged::Delete(id.clone());
        self.bump(service, &entry, members.len(), stamp, [delete]);
        drop(members);
        drop(entry);
        self.detach(gone.lease.as_ref(), service, id);
        // A member whose lease ran out was already gone for readers: it
        // expired, and there was nothing left to deregister.
        if gone.deadline() > now {
            true
        } else {
            self.metrics.expirations.inc();
            false
        }
    }

    /// Removes those of `ids` whose lease has run out, waking the service's
    /// watchers once. Returns the others with their current deadlines, so the
    /// caller can check them again then.
    pub fn expire_due(&self, service: &ServiceName, ids: &[InstanceId]) -> Vec<(InstanceId, u64)> {
        let now = self.now();
        let mut alive = Vec::new();
        let Some(entry) = self.services.get(service) else {
            return alive;
        };
        let mut members = write(&entry.members);
        let mut expired = Vec::new();
        for id in ids {
            let Some(member) = members.get(id) else {
                continue;
            };
            if member.lease.is_some() {
                continue; // its lease's expiry decides
            }
            let deadline = member.deadline();
            if deadline > now {
                alive.push((id.clone(), deadline));
            } else {
                tracing::info!(%service, %id, address = %member.address, "lease expired");
                members.remove(id);
                expired.push(Logged::Delete(id.clone()));
            }
        }
        if !expired.is_empty() {
            self.metrics.expirations.inc_by(expired.len() as u64);
            self.bump(service, &entry, members.len(), Stamp::Next, expired);
        }
        alive
    }

    /// Sorts `ids` into those whose lease has run out and the others (with
    /// their deadlines), changing nothing: for stores where expiry is a
    /// write to the backing store, whose change feed then removes them.
    pub fn due(
        &self,
        service: &ServiceName,
        ids: &[InstanceId],
    ) -> (Vec<InstanceId>, Vec<(InstanceId, u64)>) {
        let now = self.now();
        let (mut expired, mut alive) = (Vec::new(), Vec::new());
        if let Some(entry) = self.services.get(service) {
            let members = read(&entry.members);
            for id in ids {
                let own = members.get(id).filter(|m| m.lease.is_none());
                match own.map(Member::deadline) {
                    Some(deadline) if deadline > now => alive.push((id.clone(), deadline)),
                    Some(_) => expired.push(id.clone()),
                    None => {}
                }
            }
        }
        (expired, alive)
    }

    /// Who registered `id` in `service`, if it is live and was registered
    /// under an ACL.
    pub fn owner_of(&self, service: &ServiceName, id: &InstanceId) -> Option<Owner> {
        let now = self.now();
        let entry = self.services.get(service)?;
        let members = read(&entry.members);
        let member = members.get(id).filter(|m| m.deadline() > now)?;
        member.owner.clone()
    }

    /// When a registration of `id` made now is said to be made: the wall
    /// clock, but always after the registration it replaces, so that two
    /// registrations of one id never share a `registered_at` (a heartbeat
    /// names the registration it renews by it).
    pub fn next_registered_at(&self, service: &ServiceName, id: &InstanceId, wall_ms: u64) -> u64 {
        let previous = self
            .services
            .get(service)
            .and_then(|entry| read(&entry.members).get(id).map(|m| m.registered_at));
        previous.map_or(wall_ms, |previous| wall_ms.max(previous.saturating_add(1)))
    }

    /// Whether `id` is registered with a live lease.
    pub fn is_live(&self, service: &ServiceName, id: &InstanceId) -> bool {
        let now = self.now();
        self.services.get(service).is_some_and(|entry| {
            read(&entry.members)
                .get(id)
                .is_some_and(|m| m.deadline() > now)
        })
    }

    /// Every registered (service, id), live or not yet reaped.
    pub fn keys(&self) -> Vec<(ServiceName, InstanceId)> {
        self.services
            .iter()
            .flat_map(|entry| {
                let service = entry.key().clone();
                read(&entry.members)
                    .keys()
                    .map(|id| (service.clone(), id.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The live instances of `service` and its index. A service never seen
    /// has index 0 and no instances.
    pub fn resolve(&self, service: &ServiceName) -> ServiceInstances {
        let now = self.now();
        let (index, instances) = match self.services.get(service) {
            None => (0, Vec::new()),
            Some(entry) => {
                let members = read(&entry.members);
                // Read under the members lock: bumps happen under the write
                // lock, so index and members always belong together.
                let index = *entry.index.borrow();
                (index, live_instances(service, &members, now))
            }
        };
        ServiceInstances {
            service: service.clone(),
            index,
            instances,
        }
    }

    /// Every service with a live instance, and the registry-wide index.
    pub fn list(&self) -> ServiceList {
        let now = self.now();
        let index = self.last_index.load(Ordering::Acquire);
        let mut services: Vec<ServiceSummary> = self
            .services
            .iter()
            .filter_map(|entry| {
                let members = read(&entry.members);
                let instances = live_instances(entry.key(), &members, now);
                (!instances.is_empty()).then(|| ServiceSummary {
                    name: entry.key().clone(),
                    instances,
                })
            })
            .collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        ServiceList { index, services }
    }

    /// A blocking query: waits until the index of `service` differs from
    /// `after` (it rose, or — after a registry restart — the caller's index is
    /// not one this registry handed out), `wait` passes, or `cancel` fires
    /// (shutdown), then answers like [`resolve`](Self::resolve).
    pub async fn wait_for_change(
        &self,
        service: &ServiceName,
        after: u64,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> ServiceInstances {
        self.wait_past(service, after, wait, cancel).await;
        self.resolve(service)
    }

    /// What changed in `service` after `after`: the changes in order, or a
    /// snapshot when `after` is 0, older than the changes kept, or not an
    /// index this registry handed out.
    pub fn changes(&self, service: &ServiceName, after: u64) -> ServiceChanges {
        let now = self.now();
        let logged_from = self.logged_from.load(Ordering::Acquire);
        let (index, since, instances) = match self.services.get(service) {
            None => (0, Since::Snapshot, Vec::new()),
            Some(entry) => {
                let members = read(&entry.members);
                let index = *entry.index.borrow();
                let since = if after < logged_from {
                    Since::Snapshot
                } else {
                    lock(&entry.log).since(after, index, service)
                };
                let instances = match since {
                    Since::Snapshot => live_instances(service, &members, now),
                    Since::Changes(_) => Vec::new(),
                };
                (index, since, instances)
            }
        };
        let (snapshot, instances, changes) = match since {
            Since::Snapshot => {
                self.metrics.change_snapshots.inc();
                (true, Some(instances), Vec::new())
            }
            Since::Changes(changes) => {
                self.metrics.change_deltas.inc();
                (false, None, changes)
            }
        };
        ServiceChanges {
            service: service.clone(),
            index,
            snapshot,
            instances,
            changes,
            subset: None,
        }
    }

    /// Waits until the index of `service` differs from `after`, `wait`
    /// passes or `cancel` fires.
    async fn wait_past(
        &self,
        service: &ServiceName,
        after: u64,
        wait: Duration,
        cancel: &CancellationToken,
    ) {
        let mut index = {
            // Subscribing under the map guard means the entry can't be
            // forgotten between lookup and subscription.
            let entry = self
                .services
                .entry(service.clone())
                .or_insert_with(|| self.new_entry());
            entry.index.subscribe()
        };
        self.park(&mut index, after, wait, cancel).await;
        drop(index);
        self.forget_if_idle(service);
    }

    /// Parks on `index` (counted as a parked watcher) while it is still
    /// `after`, until `wait` passes or `cancel` fires.
    async fn park(
        &self,
        index: &mut watch::Receiver<u64>,
        after: u64,
        wait: Duration,
        cancel: &CancellationToken,
    ) {
        if *index.borrow_and_update() == after {
            let _parked = ParkedWatcher::new(&self.metrics);
            tokio::select! {
                _ = index.wait_for(|current| *current != after) => {}
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => {}
            }
        }
    }

    /// The index of `service` (0 if never seen).
    pub fn index(&self, service: &ServiceName) -> u64 {
        self.services
            .get(service)
            .map_or(0, |entry| *entry.index.borrow())
    }

    /// Raises the index of `service` to `revision` (a change the backing
    /// store recorded for the service as a whole), waking its watchers; no
    /// change if it is there already. Remembers a service with no members.
    pub fn raise_index(&self, service: &ServiceName, revision: u64) {
        let entry = self
            .services
            .entry(service.clone())
            .or_insert_with(|| self.new_entry());
        let members = write(&entry.members);
        if revision > *entry.index.borrow() {
            self.bump(service, &entry, members.len(), Stamp::At(revision), []);
        }
    }

    /// How many services and live instances there are.
    pub fn counts(&self) -> (usize, usize) {
        let now = self.now();
        let mut instances = 0;
        let mut services = 0;
        for entry in self.services.iter() {
            let live = read(&entry.members)
                .values()
                .filter(|m| m.deadline() > now)
                .count();
            if live > 0 {
                services += 1;
                instances += live;
            }
        }
        (services, instances)
    }

    /// Gives `service` a new index, logs `changes` at it and wakes its
    /// watchers. Called with the members write lock held, so indexes rise
    /// in the order of the changes.
    fn bump(
        &self,
        service: &ServiceName,
        entry: &ServiceEntry,
        members: usize,
        stamp: Stamp,
        changes: impl IntoIterator<Item = Logged>,
    ) {
        let previous = *entry.index.borrow();
        let index = match stamp {
            Stamp::Next => self.last_index.fetch_add(1, Ordering::AcqRel) + 1,
            Stamp::At(revision) => {
                self.last_index.fetch_max(revision, Ordering::AcqRel);
                // A service's index never goes back, whatever the stamp.
                revision.max(previous)
            }
        };
        let mut log = lock(&entry.log);
        if index > previous {
            log.record(index, changes);
        } else {
            // A backing store's change that arrived after a later one (a
            // replica's own write, applied before its watch brought this
            // one): it has no index of its own to be logged at, so those
            // at `previous` get a snapshot next time, as the list read
            // would give them.
            let mut changes = changes.into_iter().peekable();
            if changes.peek().is_some() {
                *log = ChangeLog::starting_at(previous + 1);
            }
        }
        drop(log);
        entry.index.send_replace(index);
        let before = entry.counted.swap(members, Ordering::Relaxed);
        self.limits.recount(before, members);
        self.metrics.set_instances(service, members);
    }

    /// Drops a service entry that a blocking read of an unknown name created,
    /// once nobody waits on it (nor asked for a subset of it), so that reads of made-up names can't grow the
    /// map. A service that ever had members keeps its entry (and its index),
    /// so its watchers never see the index go back.
    fn forget_if_idle(&self, service: &ServiceName) {
        self.services.remove_if(service, |_, entry| {
            *entry.index.borrow() == 0
                && entry.index.receiver_count() == 0
                && read(&entry.members).is_empty()
                && entry.subsets.is_empty()
        });
    }
}

impl ServiceEntry {
    /// A service with no members yet, its change log starting at `index`.
    fn new(index: u64) -> Self {
        Self {
            members: RwLock::new(BTreeMap::new()),
            index: watch::Sender::new(0),
            log: Mutex::new(ChangeLog::starting_at(index)),
            subsets: subsets::SubsetClients::default(),
            made: encoded::MadeAnswer::default(),
            delta: encoded::MadeDelta::default(),
            counted: AtomicUsize::new(0),
        }
    }
}

fn unknown_instance(service: &ServiceName, id: &InstanceId) -> StoreError {
    StoreError::UnknownInstance {
        service: service.clone(),
        id: id.clone(),
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain
/// data that is valid at every step, so carry on with it.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
