//! The embedded default store: everything in this process's memory.

use super::{
    catalog::Stamp, clock::wall_clock_ms, expiry::ExpiryQueue, Catalog, Clock, Registered, Store,
    StoreError,
};
use crate::metrics::Metrics;
use beacon_wire::{Instance, InstanceId, Registration, ServiceName};
use std::sync::Arc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Registrations held in memory, with leases expired by a background task.
///
/// Fast and simple; nothing survives a restart, which the protocol absorbs:
/// a heartbeat to a restarted registry gets `404 unknown_instance` and the
/// instance registers again.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Arc<Inner>,
    /// Stops the expiry task when the store is dropped.
    _reaper: DropGuard,
}

#[derive(Debug)]
struct Inner {
    catalog: Catalog,
    expiry: ExpiryQueue,
}

impl MemoryStore {
    /// An empty store. Spawns the expiry task, so call it inside a tokio runtime.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let inner = Arc::new(Inner {
            catalog: Catalog::new(Clock::new(), metrics),
            expiry: ExpiryQueue::default(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(Arc::clone(&inner).reap(stop.clone()));
        Self {
            inner,
            _reaper: stop.drop_guard(),
        }
    }

    /// How many lease deadlines wait to be checked (about one per live
    /// instance; more right after re-registrations).
    pub fn pending_deadlines(&self) -> usize {
        self.inner.expiry.pending()
    }
}

impl Inner {
    /// Expires leases as they come due, until `stop` fires.
    async fn reap(self: Arc<Self>, stop: CancellationToken) {
        let clock = self.catalog.clock();
        while let Some(groups) = self.expiry.next_due(clock, &stop).await {
            for (service, ids) in groups {
                let renewed = self.catalog.expire_due(&service, &ids);
                self.expiry.requeue(&service, renewed);
            }
        }
    }
}

impl Store for MemoryStore {
    async fn register(
        &self,
        service: ServiceName,
        id: InstanceId,
        registration: Registration,
    ) -> Result<Registered, StoreError> {
        let (outcome, deadline) = self.inner.catalog.upsert(
            service.clone(),
            id.clone(),
            registration,
            wall_clock_ms(),
            Stamp::Next,
        );
        self.inner.expiry.schedule(deadline, service, id);
        Ok(outcome)
    }

    async fn heartbeat(
        &self,
        service: &ServiceName,
        id: &InstanceId,
    ) -> Result<Instance, StoreError> {
        self.inner.catalog.renew(service, id)
    }

    async fn deregister(&self, service: &ServiceName, id: &InstanceId) -> Result<(), StoreError> {
        if self.inner.catalog.remove(service, id, Stamp::Next) {
            Ok(())
        } else {
            Err(StoreError::UnknownInstance {
                service: service.clone(),
                id: id.clone(),
            })
        }
    }

    fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
