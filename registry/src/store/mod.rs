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

pub use catalog::{Catalog, Stamp};
pub use clock::Clock;
pub use etcd::EtcdStore;
pub use memory::MemoryStore;

use beacon_wire::{Instance, InstanceId, Registration, ServiceName};
use std::future::Future;

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
    /// The backing store cannot be reached right now.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// A place to keep registrations. Implementations must make every operation
/// all-or-nothing: a failed call changes no state.
pub trait Store: Send + Sync + 'static {
    /// Registers `id` in `service`, or replaces its registration, and starts
    /// (or restarts) its lease.
    fn register(
        &self,
        service: ServiceName,
        id: InstanceId,
        registration: Registration,
    ) -> impl Future<Output = Result<Registered, StoreError>> + Send;

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

    /// The local view that reads and blocking queries are answered from.
    fn catalog(&self) -> &Catalog;

    /// A deep health check: can the store accept writes right now?
    fn check(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A short name for logs and `/_health` (`"memory"`, `"etcd"`).
    fn kind(&self) -> &'static str;
}
