//! Shared leases on etcd.
//!
//! A shared lease is an etcd lease (its length in whole seconds, with
//! slack, as for instances) and a key `{prefix}_leases/{lease}` on it that
//! holds the exact length. Every instance registered on the lease has its
//! key on the same etcd lease, so revoking it removes them all in one
//! revision. Replicas learn of a lease, and of every keepalive, through
//! the watch (a keepalive rewrites the lease key, as a heartbeat rewrites
//! an instance's), and end a lease that ran out to the millisecond: a
//! compare-and-delete of the lease key on the revision seen, then a revoke.

use super::{
    record::{lease_seconds, LeaseRecord},
    EtcdError, Inner,
};
use crate::store::{catalog::Stamp, clock::millis, new_lease_id, Owner, StoreError};
use beacon_wire::{LeaseGrant, LeaseId, LeaseStatus};
use std::{sync::Arc, time::Duration};

/// What a replica last saw of a shared lease's key.
#[derive(Debug, Clone)]
pub(super) struct SeenLease {
    /// The etcd lease that it and its instances' keys are on.
    pub(super) etcd_lease: i64,
    pub(super) create_revision: u64,
    pub(super) mod_revision: u64,
    pub(super) value: Vec<u8>,
}

impl Inner {
    pub(super) async fn grant_lease(
        &self,
        ttl: Duration,
        owner: Option<Owner>,
    ) -> Result<LeaseGrant, StoreError> {
        self.writable()?;
        let lease = new_lease_id();
        let ttl_ms = millis(ttl);
        let record = LeaseRecord {
            ttl_ms,
            owner: owner.as_deref().map(str::to_owned),
        };
        let value =
            serde_json::to_vec(&record).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let etcd_lease = self
            .client
            .grant(lease_seconds(ttl))
            .await
            .map_err(|e| self.unavailable(e))?;
        let key = self.keys.lease_key(&lease);
        let revision = self
            .client
            .put(&key, &value, etcd_lease)
            .await
            .map_err(|e| self.unavailable(e))?;
        self.saw_lease(
            lease.clone(),
            &record,
            SeenLease {
                etcd_lease,
                create_revision: 0, // learnt from the watch
                mod_revision: revision,
                value,
            },
        );
        Ok(LeaseGrant { lease, ttl_ms })
    }

    pub(super) async fn keep_lease(&self, lease: &LeaseId) -> Result<LeaseStatus, StoreError> {
        self.writable()?;
        let unknown = || StoreError::UnknownLease(lease.clone());
        let seen = self.live_lease(lease)?;
        if !self
            .client
            .keep_alive(seen.etcd_lease)
            .await
            .map_err(|e| self.unavailable(e))?
        {
            return Err(unknown());
        }
        // Rewriting the key tells every replica's watch about the renewal.
        let key = self.keys.lease_key(lease);
        let same = if seen.create_revision == 0 {
            self.client
                .put(&key, &seen.value, seen.etcd_lease)
                .await
                .map_err(|e| self.unavailable(e))?;
            true
        } else {
            self.client
                .put_if_same(&key, &seen.value, seen.etcd_lease, seen.create_revision)
                .await
                .map_err(|e| self.unavailable(e))?
        };
        if !same {
            return Err(unknown());
        }
        self.catalog.keep_lease(lease)
    }

    pub(super) async fn end_lease(&self, lease: &LeaseId) -> Result<(), StoreError> {
        self.writable()?;
        let seen = self.live_lease(lease)?;
        let revision = self
            .client
            .revoke(seen.etcd_lease)
            .await
            .map_err(|e| self.unavailable(e))?;
        // The watch brings the deletes to every replica (maybe to this one
        // already); apply them here too, so the next read agrees.
        self.leases_seen.remove(lease);
        let removed = self.catalog.end_lease(lease, Stamp::At(revision));
        tracing::info!(%lease, instances = removed.unwrap_or(0), "lease ended");
        Ok(())
    }

    /// The etcd lease of a live shared lease, for a registration on it.
    pub(super) fn etcd_lease_of(&self, lease: &LeaseId) -> Result<i64, StoreError> {
        self.live_lease(lease).map(|seen| seen.etcd_lease)
    }

    /// What was seen of `lease`, if the catalog holds it live.
    fn live_lease(&self, lease: &LeaseId) -> Result<SeenLease, StoreError> {
        let seen = self.leases_seen.get(lease).map(|s| s.clone());
        match seen {
            Some(seen) if self.catalog.lease_status(lease).is_ok() => Ok(seen),
            _ => Err(StoreError::UnknownLease(lease.clone())),
        }
    }

    /// `lease`'s key was written (granted or kept alive, here or on
    /// another replica): hold it with a fresh deadline.
    pub(super) fn saw_lease(&self, lease: LeaseId, record: &LeaseRecord, seen: SeenLease) {
        let newer = self
            .leases_seen
            .get(&lease)
            .is_none_or(|old| old.mod_revision <= seen.mod_revision);
        if !newer {
            return;
        }
        let first = self.leases_seen.insert(lease.clone(), seen).is_none();
        let owner = record.owner.as_deref().map(Owner::from);
        let deadline = self.catalog.hold_lease(lease.clone(), record.ttl_ms, owner);
        if first {
            self.expiry.schedule_lease(deadline, lease);
        }
    }

    /// `lease`'s key was deleted at `revision` (ended here or elsewhere,
    /// or run out in etcd): its instances go, in one batch per service.
    pub(super) fn lost_lease(&self, lease: &LeaseId, revision: u64) {
        self.leases_seen.remove(lease);
        self.catalog.end_lease(lease, Stamp::At(revision));
    }

    /// A shared lease came due here: if it has run out, delete its key
    /// (unless a keepalive rewrote it meanwhile) and revoke it; the watch
    /// brings the removals. Returns when to look again, if ever.
    pub(super) async fn expire_lease(self: &Arc<Self>, lease: &LeaseId) -> Option<u64> {
        let seen = self.leases_seen.get(lease).map(|s| s.clone())?;
        let deadline = self.catalog.lease_deadline(lease)?;
        let now = self.catalog.clock().now_ms();
        if self.catalog.is_frozen() {
            return Some(now + super::RECHECK_MS);
        }
        if deadline > now {
            return Some(deadline);
        }
        let key = self.keys.lease_key(lease);
        match self
            .client
            .delete_if_unchanged(&key, seen.mod_revision)
            .await
        {
            Ok(true) => {
                tracing::info!(%lease, "lease expired");
                if let Err(e) = self.client.revoke(seen.etcd_lease).await {
                    tracing::warn!(%lease, "cannot revoke a lease that ran out ({e}); etcd ends it itself");
                }
            }
            Ok(false) => {} // renewed meanwhile: the watch brings the new deadline
            Err(e) => tracing::warn!(%lease, "cannot expire a lease yet: {e}"),
        }
        Some(now + super::RECHECK_MS)
    }
}

/// A registration named an etcd lease that etcd no longer holds.
pub(super) fn lease_gone(error: &EtcdError) -> bool {
    matches!(error, EtcdError::Rejected(message) if message.contains("lease not found"))
}
