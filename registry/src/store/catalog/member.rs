//! One registered instance as the catalog holds it.

use beacon_wire::{Address, Instance, InstanceId, LeaseId, Metadata, ServiceName};
use std::{
    collections::BTreeMap,
    ops::Deref,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

/// A registered instance: what it registered with, and its lease end.
#[derive(Debug)]
pub(super) struct Member {
    /// Shared with the change log's put of this registration, so a logged
    /// change costs a pointer, not a copy of the instance.
    stored: Arc<Stored>,
    /// Lease end in [`Clock`](crate::store::Clock) milliseconds. The lease
    /// has run out once `now >= deadline`.
    pub(super) deadline: Deadline,
}

/// What an instance registered with: fixed until it registers again.
#[derive(Debug)]
pub(super) struct Stored {
    pub(super) address: Address,
    pub(super) metadata: Metadata,
    pub(super) ttl_ms: u64,
    /// Wall-clock milliseconds of the last registration; changes when an
    /// instance registers anew, which tells clients it came back.
    pub(super) registered_at: u64,
    /// The shared lease it lives on, if any.
    pub(super) lease: Option<LeaseId>,
    /// The token that registered it, under an ACL.
    pub(super) owner: Option<crate::store::Owner>,
}

/// Where a member's lease end is kept.
#[derive(Debug)]
pub(super) enum Deadline {
    /// A lease of its own.
    Own(AtomicU64),
    /// A shared lease's: renewing the lease renews every member at once,
    /// and ending it (setting it to `leases::ENDED`) hides them all at
    /// once.
    Shared(Arc<AtomicU64>),
}

impl Deadline {
    /// The cell the lease end is kept in.
    pub(super) fn cell(&self) -> &AtomicU64 {
        match self {
            Self::Own(at) => at,
            Self::Shared(at) => at,
        }
    }
}

impl Member {
    pub(super) fn new(stored: Stored, deadline: Deadline) -> Self {
        Self {
            stored: Arc::new(stored),
            deadline,
        }
    }

    /// The registration, to be shared with the change log.
    pub(super) fn stored(&self) -> &Arc<Stored> {
        &self.stored
    }

    pub(super) fn deadline(&self) -> u64 {
        self.deadline.cell().load(Ordering::Relaxed)
    }

    pub(super) fn to_instance(&self, service: &ServiceName, id: &InstanceId, now: u64) -> Instance {
        self.stored
            .to_instance(service, id, self.deadline().saturating_sub(now))
    }
}

impl Deref for Member {
    type Target = Stored;

    fn deref(&self) -> &Stored {
        &self.stored
    }
}

impl Stored {
    /// The instance as the wire shows it, its lease ending in `expires_in_ms`.
    pub(super) fn to_instance(
        &self,
        service: &ServiceName,
        id: &InstanceId,
        expires_in_ms: u64,
    ) -> Instance {
        Instance {
            service: service.clone(),
            id: id.clone(),
            address: self.address.clone(),
            metadata: self.metadata.clone(),
            ttl_ms: self.ttl_ms,
            lease: self.lease.clone(),
            registered_at: self.registered_at,
            expires_in_ms,
        }
    }
}

/// The live members of a service, as instances, ordered by id.
pub(super) fn live_instances(
    service: &ServiceName,
    members: &BTreeMap<InstanceId, Member>,
    now: u64,
) -> Vec<Instance> {
    members
        .iter()
        .filter(|(_, m)| m.deadline() > now)
        .map(|(id, m)| m.to_instance(service, id, now))
        .collect()
}
