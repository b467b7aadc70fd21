//! The live panel's data: registry, instances with their breakers, and who
//! served last.

use crate::ratings::LastServed;
use beacon::{InstanceSnapshot, ServiceSnapshot};
use serde::Serialize;
use std::collections::HashMap;

/// Body of `GET /api/status`, and of the panel's `status` events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The registries the market resolves through.
    pub registry: RegistryStatus,
    /// The service the panel shows.
    pub service: String,
    /// Its instances: id, address, breaker, successes, failures, last error,
    /// latency estimate, calls in flight, learned limit, reported
    /// utilization, and share of recent calls.
    pub instances: Vec<InstanceRow>,
    /// Which instance served the latest live rating.
    pub last_served: Option<LastServed>,
}

/// One instance on the panel: the library's snapshot and its share of the
/// recent calls (see [`TrafficShares`](super::traffic::TrafficShares)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceRow {
    /// What the library knows of it.
    #[serde(flatten)]
    pub instance: InstanceSnapshot,
    /// Its share (0..=1) of the calls of the last few seconds, once there
    /// were any.
    pub share: Option<f64>,
}

impl InstanceRow {
    /// The latency estimate for people: `1.3 ms`, or a dash before any.
    pub fn latency_label(&self) -> String {
        self.instance
            .latency_ms
            .map_or_else(|| "–".to_owned(), |ms| format!("{ms:.1} ms"))
    }

    /// The utilization the instance last reported for people: `45 %` (past
    /// 100 % when it queues past its capacity), or a dash before any.
    pub fn load_label(&self) -> String {
        self.instance
            .reported_utilization
            .map_or_else(|| "–".to_owned(), |u| format!("{:.0} %", u * 100.0))
    }

    /// The share for people: `42 %`, or a dash before any calls.
    pub fn share_label(&self) -> String {
        self.share
            .map_or_else(|| "–".to_owned(), |share| format!("{:.0} %", share * 100.0))
    }
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
        shares: &HashMap<String, f64>,
        last_served: Option<LastServed>,
    ) -> Self {
        Self {
            registry: RegistryStatus {
                urls: urls.to_vec(),
                reachable: snapshot.registry_reachable,
            },
            service: snapshot.service.to_string(),
            instances: snapshot
                .instances
                .into_iter()
                .map(|instance| InstanceRow {
                    share: shares.get(instance.address.as_str()).copied(),
                    instance,
                })
                .collect(),
            last_served,
        }
    }
}
