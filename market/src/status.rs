//! The live panel's data: registry, instances with their breakers, and who
//! served last.

use crate::ratings::LastServed;
use beacon::{InstanceSnapshot, ServiceSnapshot};
use serde::Serialize;

/// Body of `GET /api/status`, and of the panel's `status` events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The registries the market resolves through.
    pub registry: RegistryStatus,
    /// The service the panel shows.
    pub service: String,
    /// Its instances: id, address, breaker, successes, failures, last error, latency.
    pub instances: Vec<InstanceSnapshot>,
    /// Which instance served the latest live rating.
    pub last_served: Option<LastServed>,
}

/// The registry part of [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistryStatus {
    /// Registry URLs, in failover order.
    pub urls: Vec<String>,
    /// Whether the last registry call succeeded.
    pub reachable: bool,
}

impl Status {
    /// Builds the status from the library's snapshot.
    pub fn new(
        urls: &[String],
        snapshot: ServiceSnapshot,
        last_served: Option<LastServed>,
    ) -> Self {
        Self {
            registry: RegistryStatus {
                urls: urls.to_vec(),
                reachable: snapshot.registry_reachable,
            },
            service: snapshot.service.to_string(),
            instances: snapshot.instances,
            last_served,
        }
    }
}
