//! Shared leases: many members, one deadline.
//!
//! A shared lease is one `Arc<AtomicU64>` deadline that each of its
//! members holds (`Deadline::Shared`): a keepalive is one store, however
//! many instances live on the lease, and readers judge every member by it
//! as they judge a lease of its own. Ending a lease sets the deadline to
//! [`ENDED`] first — every member is gone for readers in that instant —
//! then removes the members, one change batch (one wake) per service.

use super::change_log::Logged;
use super::{lock, write, Catalog, Owner, ServiceEntry, Stamp, StoreError};
use beacon_wire::{InstanceId, LeaseId, LeaseStatus, ServiceName};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

/// The deadline of a lease that has ended: before any clock reading.
pub(super) const ENDED: u64 = 0;

/// One shared lease.
#[derive(Debug)]
pub(super) struct SharedLease {
    ttl_ms: u64,
    /// The deadline every member shares.
    pub(super) deadline: Arc<AtomicU64>,
    /// Who joined it, by service (a few bytes per instance: ids are shared
    /// pointers). May name an instance that has since moved to a lease of
    /// its own (ending checks each member's lease), never misses one on it.
    members: Mutex<Joined>,
    /// The token that granted it, under an ACL.
    owner: Option<Owner>,
}

/// A lease's members, by service.
#[derive(Debug, Default)]
struct Joined {
    by_service: BTreeMap<ServiceName, BTreeSet<InstanceId>>,
    count: usize,
}

impl Joined {
    fn insert(&mut self, service: &ServiceName, id: &InstanceId) {
        let ids = self.by_service.entry(service.clone()).or_default();
        if ids.insert(id.clone()) {
            self.count += 1;
        }
    }

    fn remove(&mut self, service: &ServiceName, id: &InstanceId) {
        if let Some(ids) = self.by_service.get_mut(service) {
            if ids.remove(id) {
                self.count -= 1;
            }
            if ids.is_empty() {
                self.by_service.remove(service);
            }
        }
    }
}

/// What a member joining a lease shares with it.
#[derive(Debug)]
pub(super) struct Attached {
    /// The lease's id as held (shared by every member).
    pub(super) lease: LeaseId,
    pub(super) ttl_ms: u64,
    pub(super) deadline: Arc<AtomicU64>,
}

impl Catalog {
    /// Starts (or, for one already held, renews) the shared lease `lease`
    /// of `ttl_ms`; returns its deadline ([`Clock`](crate::store::Clock) ms)
    /// for the expiry queue. A backing store's replicas call this for every
    /// write of the lease they see, so a keepalive anywhere renews it here.
    pub fn hold_lease(&self, lease: LeaseId, ttl_ms: u64, owner: Option<Owner>) -> u64 {
        let deadline = self.now().saturating_add(ttl_ms);
        let entry = self.leases.entry(lease).or_insert_with(|| SharedLease {
            ttl_ms,
            deadline: Arc::new(AtomicU64::new(deadline)),
            members: Mutex::new(Joined::default()),
            owner,
        });
        entry.deadline.store(deadline, Ordering::Relaxed);
        deadline
    }

    /// Who granted `lease`, if it is held and was granted under an ACL.
    pub fn lease_owner(&self, lease: &LeaseId) -> Option<Owner> {
        self.leases.get(lease)?.owner.clone()
    }

    /// Renews `lease` by its length, if it has not run out.
    pub fn keep_lease(&self, lease: &LeaseId) -> Result<LeaseStatus, StoreError> {
        let now = self.now();
        let status = self
            .leases
            .get(lease)
            .filter(|held| held.deadline.load(Ordering::Relaxed) > now)
            .map(|held| {
                held.deadline
                    .store(now.saturating_add(held.ttl_ms), Ordering::Relaxed);
                held.status(lease)
            });
        status.ok_or_else(|| StoreError::UnknownLease(lease.clone()))
    }

    /// `lease`'s length and members, if it is live.
    pub fn lease_status(&self, lease: &LeaseId) -> Result<LeaseStatus, StoreError> {
        let now = self.now();
        self.leases
            .get(lease)
            .filter(|held| held.deadline.load(Ordering::Relaxed) > now)
            .map(|held| held.status(lease))
            .ok_or_else(|| StoreError::UnknownLease(lease.clone()))
    }

    /// Ends `lease` if it has run out (returns `None`); otherwise its
    /// deadline, to be checked again then. `None` too for a lease not held.
    pub fn expire_lease(&self, lease: &LeaseId) -> Option<u64> {
        let now = self.now();
        let deadline = self.lease_deadline(lease)?;
        if deadline > now {
            return Some(deadline);
        }
        let removed = self.end_lease(lease, Stamp::Next).unwrap_or(0);
        self.metrics.expirations.inc_by(removed as u64);
        tracing::info!(%lease, instances = removed, "lease expired");
        None
    }

    /// `lease`'s deadline, if held (live or run out but not yet ended).
    pub fn lease_deadline(&self, lease: &LeaseId) -> Option<u64> {
        let deadline = self.leases.get(lease)?.deadline.load(Ordering::Relaxed);
        Some(deadline)
    }

    /// Ends `lease` now and removes every instance on it, waking each
    /// service's watchers once (changes stamped `stamp`). How many went,
    /// or `None` if there was no such lease.
    pub fn end_lease(&self, lease: &LeaseId, stamp: Stamp) -> Option<usize> {
        let (_, held) = self.leases.remove(lease)?;
        // Everyone on it is gone for readers from this instant on.
        held.deadline.store(ENDED, Ordering::Relaxed);
        let joined = std::mem::take(&mut *lock(&held.members));
        self.leave_subsets(lease);
        let mut removed = 0;
        for (service, ids) in joined.by_service {
            let Some(entry) = self.services.get(&service) else {
                continue;
            };
            removed += self.remove_on_lease(&service, &entry, &ids, lease, stamp);
        }
        Some(removed)
    }

    /// Forgets `lease` without touching its members: a backing store ended
    /// it, and its change feed brings each member's removal.
    pub fn forget_lease(&self, lease: &LeaseId) {
        self.leases.remove(lease);
        self.leave_subsets(lease);
    }

    /// Every shared lease held, with how many instances are on it.
    pub fn leases(&self) -> Vec<LeaseStatus> {
        let mut all: Vec<LeaseStatus> = self
            .leases
            .iter()
            .map(|held| held.status(held.key()))
            .collect();
        all.sort_by(|a, b| a.lease.cmp(&b.lease));
        all
    }

    /// Those of `ids` still on `lease`, removed from `service` as one batch.
    fn remove_on_lease(
        &self,
        service: &ServiceName,
        entry: &ServiceEntry,
        ids: &BTreeSet<InstanceId>,
        lease: &LeaseId,
        stamp: Stamp,
    ) -> usize {
        let mut members = write(&entry.members);
        let mut deletes = Vec::new();
        for id in ids {
            if members
                .get(id)
                .is_some_and(|m| m.lease.as_ref() == Some(lease))
            {
                members.remove(id);
                deletes.push(Logged::Delete(id.clone()));
            }
        }
        let removed = deletes.len();
        if removed > 0 {
            self.bump(service, entry, members.len(), stamp, deletes);
        }
        removed
    }

    /// Joins `service`/`id` to `lease`, if it is live.
    pub(super) fn attach(
        &self,
        lease: &LeaseId,
        service: &ServiceName,
        id: &InstanceId,
    ) -> Result<Attached, StoreError> {
        let now = self.now();
        let held = self
            .leases
            .get(lease)
            .filter(|held| held.deadline.load(Ordering::Relaxed) > now)
            .ok_or_else(|| StoreError::UnknownLease(lease.clone()))?;
        lock(&held.members).insert(service, id);
        Ok(Attached {
            lease: held.key().clone(),
            ttl_ms: held.ttl_ms,
            deadline: Arc::clone(&held.deadline),
        })
    }

    /// Takes `service`/`id` off `lease`'s member list (it left the lease).
    /// Never called with a service's guard held (see the lock order).
    pub(super) fn detach(&self, lease: Option<&LeaseId>, service: &ServiceName, id: &InstanceId) {
        if let Some(held) = lease.and_then(|lease| self.leases.get(lease)) {
            lock(&held.members).remove(service, id);
        }
    }
}

impl SharedLease {
    fn status(&self, lease: &LeaseId) -> LeaseStatus {
        LeaseStatus {
            lease: lease.clone(),
            ttl_ms: self.ttl_ms,
            instances: lock(&self.members).count as u64,
        }
    }
}
