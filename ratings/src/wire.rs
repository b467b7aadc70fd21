//! What the ratings API answers, defined once for the service and its callers.

use beacon::wire::InstanceId;
use serde::{Deserialize, Serialize};

/// Body of `GET /ratings/{thing}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    /// The thing rated, e.g. `camera`.
    pub thing: String,
    /// Stars out of five.
    pub stars: f64,
    /// The instance that answered, so callers can see who served them.
    pub instance: InstanceId,
}

/// Body of `GET /_faults`, and of `PUT /_faults` (which replaces both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// Delay before every rating answer, in milliseconds (at most 600000).
    pub delay_ms: u64,
    /// Percentage of rating requests answered with a 500 (0..=100).
    pub fail_percent: u8,
}
