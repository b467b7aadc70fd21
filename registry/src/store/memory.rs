//! The embedded default store: everything in this process's memory.

use super::{
    catalog::Stamp, clock::wall_clock_ms, expiry::ExpiryQueue, new_lease_id, Catalog, Clock,
    Origin, Owner, Registered, Store, StoreError,
};
use crate::metrics::Metrics;
use beacon_wire::{
    Instance, InstanceId, LeaseGrant, LeaseId, LeaseStatus, Registration, ServiceName,
};
use std::{sync::Arc, time::Duration};
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
        while let Some(due) = self.expiry.next_due(clock, &stop).await {
            for (service, ids) in due.instances {
                let renewed = self.catalog.expire_due(&service, &ids);
                self.expiry.requeue(&service, renewed);
            }
            for lease in due.leases {
                if let Some(renewed) = self.catalog.expire_lease(&lease) {
                    self.expiry.schedule_lease(renewed, lease);
                }
            }
        }
    }
}

impl Store for MemoryStore {
    async fn register_as(
        &self,
        service: ServiceName,
        id: InstanceId,
        registration: Registration,
        owner: Option<Owner>,
    ) -> Result<Registered, StoreError> {
        let registered_at = self
            .inner
            .catalog
            .next_registered_at(&service, &id, wall_clock_ms());
        let (outcome, deadline) = self.inner.catalog.upsert(
            service.clone(),
            id.clone(),
            registration,
            Origin {
                registered_at,
                owner,
            },
            Stamp::Next,
        )?;
        if let Some(deadline) = deadline {
            self.inner.expiry.schedule(deadline, service, id);
        }
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

    async fn grant_as(
        &self,
        ttl: Duration,
        owner: Option<Owner>,
    ) -> Result<LeaseGrant, StoreError> {
        let lease = new_lease_id();
        let ttl_ms = super::clock::millis(ttl);
        let deadline = self.inner.catalog.hold_lease(lease.clone(), ttl_ms, owner);
        self.inner.expiry.schedule_lease(deadline, lease.clone());
        Ok(LeaseGrant { lease, ttl_ms })
    }

    async fn keep_alive(&self, lease: &LeaseId) -> Result<LeaseStatus, StoreError> {
        // The queue's entry comes due at the old deadline and is put back
        // at the new one then: one heap operation per TTL, as for instances.
        self.inner.catalog.keep_lease(lease)
    }

    async fn revoke(&self, lease: &LeaseId) -> Result<(), StoreError> {
        match self.inner.catalog.end_lease(lease, Stamp::Next) {
            Some(removed) => {
                tracing::info!(%lease, instances = removed, "lease ended");
                Ok(())
            }
            None => Err(StoreError::UnknownLease(lease.clone())),
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
