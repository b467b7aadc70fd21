//! Power of two choices, as linkerd2 and tower's `p2c` do: two distinct
//! instances drawn at random, the less loaded wins — latency estimate ×
//! (calls in flight + 1), equal within [`TIE_FACTOR`].

use crate::breaker::Admission;
use crate::client::{gate, Limits};
use crate::endpoint::{Endpoint, InFlight, Load};
use crate::wire::Address;
use rand::Rng;
use std::sync::Arc;
use tokio::time::Instant;

/// A place in flight on `endpoint` (within its cap as `limits` say) and
/// its breaker's admission, or neither.
pub(super) fn claim(
    endpoint: &Arc<Endpoint>,
    now: Instant,
    limits: &Limits,
) -> Option<(Admission, InFlight)> {
    let in_flight = InFlight::claim(endpoint, limits.cap(endpoint))?;
    // Refused: the place is given back as `in_flight` drops.
    let admission = gate::admit(endpoint, now)?;
    Some((admission, in_flight))
}

/// Power of two choices: of two distinct endpoints drawn at random, the
/// less loaded of those not in `tried` that would admit a call (and are
/// under their cap); `None` if neither would.
pub(super) fn least_loaded_of_two(
    endpoints: &[Arc<Endpoint>],
    tried: &[Address],
    now: Instant,
    limits: &Limits,
) -> Option<(Admission, InFlight)> {
    let count = endpoints.len();
    let mut rng = rand::rng();
    let first = rng.random_range(0..count);
    let second = (first + rng.random_range(1..count.max(2))) % count;
    let load = |i: usize| {
        let endpoint = &endpoints[i];
        if tried.contains(endpoint.address()) {
            None
        } else {
            let load = endpoint.load(now)?;
            limits
                .cap(endpoint)
                .is_none_or(|limit| load.in_flight < limit)
                .then_some(load)
        }
    };
    let first_load = load(first);
    let second_load = if second == first { None } else { load(second) };
    let chosen = match (first_load, second_load) {
        (Some(a), Some(b)) if prefers_second(a, b) => second,
        (Some(_), _) => first,
        (None, Some(_)) => second,
        (None, None) => return None,
    };
    claim(&endpoints[chosen], now, limits)
}

/// How much cheaper the second drawn endpoint must be to win the draw:
/// costs within this factor of each other are a tie, which the first drawn
/// (at random) wins. Latency estimates of equal instances differ by noise —
/// tens of percent on loopback — and a strict comparison hands the one that
/// happens to measure fastest every draw it is in: two thirds of all calls,
/// of three instances. A slow instance (or a busy one: one more call in
/// flight doubles an idle one's cost) is still well past it.
pub(crate) const TIE_FACTOR: f64 = 1.5;

/// Whether `b` is clearly less loaded than `a` (by more than
/// [`TIE_FACTOR`]); otherwise `a` wins: it was drawn at random too.
pub(crate) fn prefers_second(a: Load, b: Load) -> bool {
    cost(b, a) * TIE_FACTOR < cost(a, b)
}

/// Latency estimate × (calls in flight + 1). Without an estimate of its
/// own an endpoint borrows its rival's: neutral.
fn cost(own: Load, rival: Load) -> f64 {
    let latency = own.latency_ns.or(rival.latency_ns).unwrap_or(1.0);
    latency * f64::from(own.in_flight.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unmeasured_instance_scores_as_its_rival_and_calls_in_flight_weigh() {
        let measured = |ms: f64, in_flight| Load {
            latency_ns: Some(ms * 1e6),
            in_flight,
        };
        let new = Load {
            latency_ns: None,
            in_flight: 0,
        };
        // Neutral: a tie with a measured idle rival (the first drawn wins ties)...
        assert!(!prefers_second(measured(5.0, 0), new));
        assert!(!prefers_second(new, measured(5.0, 0)));
        // ...and preferred to a busy one.
        assert!(prefers_second(measured(5.0, 2), new));
        // 1 ms with 3 in flight costs more than 2 ms idle.
        assert!(prefers_second(measured(1.0, 3), measured(2.0, 0)));
        assert!(!prefers_second(measured(1.0, 0), measured(2.0, 0)));
        // Noise between equal instances is a tie, either way round...
        assert!(!prefers_second(measured(0.35, 0), measured(0.30, 0)));
        assert!(!prefers_second(measured(0.30, 0), measured(0.35, 0)));
        // ...a slow one is not.
        assert!(prefers_second(measured(40.0, 0), measured(0.5, 0)));
    }
}
