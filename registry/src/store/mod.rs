//! Where instances live: the [`Store`] trait and its implementations.
//!
//! The HTTP layer talks only to this trait, so a durable backend (etcd) can
//! be added without touching it. Writes go through the store; reads and
//! blocking queries are answered from the store's [`Catalog`], the local
//! in-memory view that every store keeps (the memory store *is* its catalog,
//! the etcd store feeds its catalog from etcd's change stream).

mod catalog;
mod clock;
pub mod etcd;
mod expiry;
mod memory;

pub use catalog::{Catalog, Full, Origin, Stamp, Subscription};
pub use clock::Clock;
pub use etcd::EtcdStore;
pub use memory::MemoryStore;

use beacon_wire::{
    Instance, InstanceId, LeaseGrant, LeaseId, LeaseStatus, Registration, ServiceName,
};
use std::{future::Future, time::Duration};

/// A new shared lease's id: 16 random hex digits, so that ids can't be
/// guessed, and one lease's owner can't renew or end another's by counting.
pub(crate) fn new_lease_id() -> LeaseId {
    let id = format!("{:016x}", rand::random::<u64>());
    // Hex digits follow the name rule.
    LeaseId::new(&id).unwrap_or_else(|_| unreachable!("hex digits are a valid name"))
}

/// What a registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// The instance was not registered before (answered with 201).
    Created(Instance),
    /// An existing registration was replaced or refreshed (answered with 200).
    Replaced(Instance),
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The instance is not registered: it never was, it deregistered, or its
    /// lease expired. The owner should register again.
    #[error("instance {service}/{id} is not registered (never registered, or its lease expired)")]
    UnknownInstance {
        /// The service named in the call.
        service: ServiceName,
        /// The instance id named in the call.
        id: InstanceId,
    },
    /// The shared lease named is not held: never granted, ended, or run
    /// out. The owner grants a new one.
    #[error("lease {0} is not held (never granted, ended, or run out)")]
    UnknownLease(LeaseId),
    /// The backing store cannot be reached right now.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// Who registered an instance, under an ACL: a digest of the token (see
/// [`crate::acl`]), never the token. Kept with the registration (in etcd
/// too), so that every replica can refuse another token's renewals.
pub type Owner = std::sync::Arc<str>;

/// A place to keep registrations. Implementations must make every operation
/// all-or-nothing: a failed call changes no state.
pub trait Store: Send + Sync + 'static {
    /// Registers `id` in `service`, or replaces its registration, and starts
    /// (or restarts) its lease; `owner` is kept with it.
    fn register_as(
        &self,
        service: ServiceName,
        id: InstanceId,
        registration: Registration,
        owner: Option<Owner>,
    ) -> impl Future<Output = Result<Registered, StoreError>> + Send;

    /// [`register_as`](Self::register_as) with no owner (no ACL).
    fn register(
        &self,
        service: ServiceName,
        id: InstanceId,
        registration: Registration,
    ) -> impl Future<Output = Result<Registered, StoreError>> + Send {
        self.register_as(service, id, registration, None)
    }

    /// Renews the lease of a registered instance.
    fn heartbeat(
        &self,
        service: &ServiceName,
        id: &InstanceId,
    ) -> impl Future<Output = Result<Instance, StoreError>> + Send;

    /// Removes an instance now, waking its service's watchers.
    fn deregister(
        &self,
        service: &ServiceName,
        id: &InstanceId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Grants a shared lease of `ttl` that instances can register on;
    /// `owner` is kept with it.
    fn grant_as(
        &self,
        ttl: Duration,
        owner: Option<Owner>,
    ) -> impl Future<Output = Result<LeaseGrant, StoreError>> + Send;

    /// [`grant_as`](Self::grant_as) with no owner (no ACL).
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<LeaseGrant, StoreError>> + Send {
        self.grant_as(ttl, None)
    }

    /// Renews a shared lease, and so every instance on it.
    fn keep_alive(
        &self,
        lease: &LeaseId,
    ) -> impl Future<Output = Result<LeaseStatus, StoreError>> + Send;

    /// Ends a shared lease now: every instance on it goes at once.
    fn revoke(&self, lease: &LeaseId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The local view that reads and blocking queries are answered from.
    fn catalog(&self) -> &Catalog;

    /// A deep health check: can the store accept writes right now?
    fn check(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A short name for logs and `/_health` (`"memory"`, `"etcd"`).
    fn kind(&self) -> &'static str;
}
