//! How an instance is kept in etcd: its key and its value.

use crate::store::Origin;
use beacon_wire::{Address, InstanceId, LeaseId, Metadata, Registration, ServiceName};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The value stored at an instance's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Record {
    /// Where it answers.
    pub address: String,
    /// Its lease length in milliseconds (etcd leases count whole seconds; the
    /// registry keeps the exact TTL itself).
    pub ttl_ms: u64,
    /// Its labels.
    pub metadata: Metadata,
    /// The shared lease it lives on, if any (the key is then on that
    /// lease's etcd lease).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseId>,
    /// Wall-clock milliseconds of the registration, set by the replica that
    /// took it, so every replica reports the same value.
    pub registered_at: u64,
    /// The token that registered it, under an ACL (a digest, never the
    /// token), so every replica refuses another token's renewals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl Record {
    /// The record of a registration made now.
    pub(super) fn new(registration: &Registration, origin: &Origin) -> Self {
        Self {
            address: registration.address.to_string(),
            ttl_ms: u64::try_from(registration.ttl.as_millis()).unwrap_or(u64::MAX),
            metadata: registration.metadata.clone(),
            lease: registration.lease.clone(),
            registered_at: origin.registered_at,
            owner: origin.owner.as_deref().map(str::to_owned),
        }
    }

    /// When and by whom it was registered.
    pub(super) fn origin(&self) -> Origin {
        Origin {
            registered_at: self.registered_at,
            owner: self.owner.as_deref().map(Into::into),
        }
    }

    /// Back to a registration; `None` if the stored value is not one we wrote.
    pub(super) fn registration(&self) -> Option<Registration> {
        Some(Registration {
            address: Address::new(&self.address).ok()?,
            ttl: Duration::from_millis(self.ttl_ms),
            lease: self.lease.clone(),
            metadata: self.metadata.clone(),
        })
    }
}

/// The value stored at a shared lease's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LeaseRecord {
    /// Its length in milliseconds (etcd's own lease counts whole seconds,
    /// with slack; the replicas keep the exact length).
    pub ttl_ms: u64,
    /// The token that granted it, under an ACL (a digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// Where shared leases' keys live under the prefix: `_` can't start a
/// service name, so no service's keys are among them.
const LEASES: &str = "_leases/";

/// An instance's key is `{prefix}{service}/{id}`; a shared lease's is
/// `{prefix}_leases/{lease}`, on the lease's etcd lease; a service's *index key*
/// is `{prefix}{service}`: it holds nothing, and every membership change
/// (registration, deregistration, expiry) writes it in the same transaction,
/// so its mod revision is the service's index — the same on every replica,
/// and readable after a restart (a heartbeat rewrites an instance's key, so
/// the instance keys' revisions can't tell).
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (e.g. `/beacon/services/`).
    pub(super) fn new(prefix: &str) -> Self {
        let mut prefix = prefix.to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self { prefix }
    }

    /// The prefix every key starts with.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of one instance.
    pub(super) fn key(&self, service: &ServiceName, id: &InstanceId) -> String {
        format!("{}{service}/{id}", self.prefix)
    }

    /// The index key of `service`.
    pub(super) fn index_key(&self, service: &ServiceName) -> String {
        format!("{}{service}", self.prefix)
    }

    /// The key of a shared lease.
    pub(super) fn lease_key(&self, lease: &LeaseId) -> String {
        format!("{}{LEASES}{lease}", self.prefix)
    }

    /// What a key under the prefix is.
    pub(super) fn kind(&self, key: &str) -> Option<KeyKind> {
        let under = key.strip_prefix(&self.prefix)?;
        if let Some(lease) = under.strip_prefix(LEASES) {
            return Some(KeyKind::Lease(lease.parse().ok()?));
        }
        if let Some((service, id)) = self.parse(key) {
            return Some(KeyKind::Instance(service, id));
        }
        let service = key.strip_prefix(&self.prefix)?.parse().ok()?;
        Some(KeyKind::Index(service))
    }

    /// The service and id a key names, if it is one of ours.
    pub(super) fn parse(&self, key: &str) -> Option<(ServiceName, InstanceId)> {
        let (service, id) = key.strip_prefix(&self.prefix)?.split_once('/')?;
        Some((service.parse().ok()?, id.parse().ok()?))
    }
}

/// What a key under the prefix names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeyKind {
    /// An instance's key.
    Instance(ServiceName, InstanceId),
    /// A service's index key.
    Index(ServiceName),
    /// A shared lease's key.
    Lease(LeaseId),
}

/// The etcd lease length for a TTL: whole seconds, rounded up, plus slack.
/// The registry expires instances itself, to the millisecond; the etcd
/// lease is the backstop that removes them when no replica is running.
pub(super) fn lease_seconds(ttl: Duration) -> u64 {
    ttl.as_millis().div_ceil(1000) as u64 + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let keys = Keys::new("/beacon/services");
        let service: ServiceName = "ratings".parse().expect("valid");
        let id: InstanceId = "ratings-1".parse().expect("valid");
        let key = keys.key(&service, &id);
        assert_eq!(key, "/beacon/services/ratings/ratings-1");
        assert_eq!(keys.parse(&key), Some((service.clone(), id.clone())));
        assert_eq!(keys.parse("/other/ratings/x"), None);
        assert_eq!(keys.parse("/beacon/services/Bad/x"), None);
        let index = keys.index_key(&service);
        assert_eq!(index, "/beacon/services/ratings");
        assert_eq!(keys.parse(&index), None, "not an instance");
        assert_eq!(keys.kind(&index), Some(KeyKind::Index(service.clone())));
        assert_eq!(keys.kind(&key), Some(KeyKind::Instance(service, id)));
        assert_eq!(keys.kind("/beacon/services/Bad"), None);
        let lease: LeaseId = "00ff".parse().expect("valid");
        let lease_key = keys.lease_key(&lease);
        assert_eq!(lease_key, "/beacon/services/_leases/00ff");
        assert_eq!(keys.kind(&lease_key), Some(KeyKind::Lease(lease)));
        assert_eq!(keys.parse(&lease_key), None, "not an instance");
    }

    #[test]
    fn leases_outlast_the_ttl() {
        assert_eq!(lease_seconds(Duration::from_millis(1000)), 3);
        assert_eq!(lease_seconds(Duration::from_millis(1500)), 4);
        assert_eq!(lease_seconds(Duration::from_millis(15000)), 17);
    }
}
