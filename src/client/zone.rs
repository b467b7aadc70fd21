//! Zone-aware routing: a caller that knows its zone prefers instances in
//! it, as Envoy's zone-aware routing, Consul's `Near` queries and Ribbon's
//! zone affinity do — cross-zone traffic costs money and latency.
//!
//! An instance's zone is its `zone` metadata (see
//! [`wire::ZONE`](crate::wire::ZONE)). A call from zone *z* goes:
//!
//! * to *z* while at least [`HEALTHY_SHARE`] of *z*'s instances would admit
//!   a call (breaker not open);
//! * below that, to *z* with a probability equal to *z*'s healthy share,
//!   and elsewhere for the rest — the local zone keeps what its healthy
//!   instances can carry and spills the remainder, instead of piling all of
//!   *z*'s calls on its few survivors;
//! * elsewhere when no instance of *z* would admit it, or *z* has none.
//!
//! Within the chosen side the balancer chooses as usual; when nothing there
//! would take the call (all tried, at their cap, or refused meanwhile), it
//! falls back to every instance, so zone preference never fails a call.
//! Retries and hedges choose among every zone: their call has found trouble
//! already, and a zone that has just gone down whole would otherwise get
//! them too, until its breakers open.

use crate::endpoint::Endpoint;
use rand::Rng;
use std::sync::Arc;
use tokio::time::Instant;

/// The healthy share of its instances at which a zone keeps all its own
/// calls: with five instances, one may be out; with three, none.
pub const HEALTHY_SHARE: f64 = 0.8;

/// The instances a call from `zone` should try first (see the module's
/// documentation). Empty when there is none to prefer.
pub(super) fn preferred(
    endpoints: &[Arc<Endpoint>],
    zone: &str,
    now: Instant,
) -> Vec<Arc<Endpoint>> {
    let (local, elsewhere): (Vec<_>, Vec<_>) = endpoints
        .iter()
        .cloned()
        .partition(|endpoint| endpoint.zone() == Some(zone));
    if local.is_empty() {
        return elsewhere;
    }
    let healthy = local.iter().filter(|e| e.admissible(now)).count();
    // Counts of instances: far below 2^52, exact as f64.
    let share = healthy as f64 / local.len() as f64;
    if share >= HEALTHY_SHARE || rand::rng().random_bool(share) {
        local
    } else {
        elsewhere
    }
}
