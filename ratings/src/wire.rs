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
