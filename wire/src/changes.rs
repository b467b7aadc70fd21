//! Body of `GET /v1/services/{service}/changes`: what changed in a service
//! after an index, instead of its whole list.
//!
//! A watcher keeps the instances it has and the index they are at, asks
//! for the changes after that index, applies them in order, and asks again
//! from the index of the answer: a change costs it (and the registry) the
//! size of the change, not the size of the service. When its index is 0,
//! or older than the changes the registry keeps, the answer is a snapshot:
//! the whole list, to start again from.

use super::body::Instance;
use super::names::InstanceId;
use super::names::ServiceName;
use serde::{Deserialize, Serialize};

/// The answer of a changes read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceChanges {
    /// The service asked for.
    pub service: ServiceName,
    /// The index these changes bring the service to: ask for the changes
    /// after it next.
    pub index: u64,
    /// Whether [`instances`](Self::instances) is the whole list to start
    /// from (the index asked for was 0, or older than the changes kept):
    /// then drop what you had.
    pub snapshot: bool,
    /// With a snapshot, the live instances, ordered by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<Instance>>,
    /// Every change after the index asked for (after the snapshot, if any),
    /// in order.
    pub changes: Vec<Change>,
    /// With `subset=K&client=<lease>`: the instances (or changes) are the
    /// client's subset of K of the service's instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<SubsetSize>,
}

/// How large a subset answer's subset is, and of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubsetSize {
    /// The subset's size asked for (K); the subset holds fewer only when
    /// the service does.
    pub size: u64,
    /// The service's live instances.
    pub of: u64,
}

/// One change to a service's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// What happened.
    pub op: ChangeOp,
    /// The instance it happened to.
    pub id: InstanceId,
    /// For a put, the instance as it now is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Instance>,
}

/// What a [`Change`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// The instance joined, or its address or metadata changed.
    Put,
    /// The instance left: deregistered, or its lease ran out.
    Delete,
}

impl Change {
    /// `instance` joined or changed.
    pub fn put(instance: Instance) -> Self {
        Self {
            op: ChangeOp::Put,
            id: instance.id.clone(),
            instance: Some(instance),
        }
    }

    /// `id` left.
    pub fn delete(id: InstanceId) -> Self {
        Self {
            op: ChangeOp::Delete,
            id,
            instance: None,
        }
    }
}

impl ServiceChanges {
    /// Applies this answer to `instances` (what the caller had, at the
    /// index it asked after), leaving them as the service is at
    /// [`index`](Self::index), ordered by id.
    pub fn apply_to(&self, instances: &mut Vec<Instance>) {
        if let Some(snapshot) = &self.instances {
            instances.clone_from(snapshot);
        }
        for change in &self.changes {
            let at = instances.binary_search_by(|i| i.id.cmp(&change.id));
            match (&change.instance, at) {
                (Some(instance), Ok(i)) => instances[i] = instance.clone(),
                (Some(instance), Err(i)) => instances.insert(i, instance.clone()),
                (None, Ok(i)) => {
                    instances.remove(i);
                }
                (None, Err(_)) => {}
            }
        }
    }
}
