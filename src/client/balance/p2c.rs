//! Power of two choices, as linkerd2 and tower's `p2c` do: two distinct
//! instances drawn at random, the less loaded wins — latency estimate ×
//! (calls in flight + 1) × (1 + reported utilization), equal within
//! [`TIE_FACTOR`].
//!
//! The first two factors are what this client sees of an instance; the
//! third is what the instance says of itself, every caller's load included
//! (see [`reported_load`](crate::reported_load)). gRPC's weighted round
//! robin weighs by reports alone and, as its authors say, is blind to
//! calls in flight and to the network; peak-EWMA p2c is blind to other
//! callers. Multiplying keeps each signal's say: an instance reporting
//! itself full (1.0) costs twice an idle one that answers as fast with as
//! many in flight — past the tie factor, so it loses the draw — while
//! reports that differ by less than half are noise, a tie.

use super::Setup;
use crate::breaker::Admission;
use crate::client::{gate, Limits, SlowStart};
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
/// under their cap), a warming one taking part as `setup`'s slow start
/// says; `None` if neither would.
pub(super) fn least_loaded_of_two<N>(
    endpoints: &[Arc<Endpoint>],
    tried: &[Address],
    now: Instant,
    setup: &Setup<N>,
) -> Option<(Admission, InFlight)> {
    let limits = &setup.limits;
    let count = endpoints.len();
    let mut rng = rand::rng();
    let first = rng.random_range(0..count);
    let second = (first + rng.random_range(1..count.max(2))) % count;
    let load = |i: usize| {
        let endpoint = &endpoints[i];
        if tried.contains(endpoint.address()) {
            return None;
        }
        let mut load = endpoint.load(now)?;
        if !setup.load_reports {
            load.utilization = None;
        }
        limits
            .cap(endpoint)
            .is_none_or(|limit| load.in_flight < limit)
            .then_some(load)
    };
    let first_load = load(first);
    let second_load = if second == first { None } else { load(second) };
    let (first_load, second_load) = match (first_load, second_load) {
        (Some(a), Some(b)) => thin_by_warmth(a, b, setup.slow_start.as_ref(), &mut rng),
        drawn => drawn,
    };
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
fn prefers_second(a: Load, b: Load) -> bool {
    cost(b, a) * TIE_FACTOR < cost(a, b)
}

/// Two candidates, each left in the draw with probability its warming
/// weight over the greater of the two (see [`SlowStart`]): a warming
/// endpoint against a warm one takes part `weight` of the time, and
/// otherwise loses the draw; two endpoints warming alike (they joined
/// together) are compared as warm ones — by their loads alone.
///
/// With n − 1 warm peers and loads alike a warming endpoint's share is
/// then about `weight / n` of the calls (Envoy's weighted choice gives
/// `weight / (weight + n − 1)`), whatever its latency says. Dividing its
/// cost by the weight instead (a first version) made it lose every draw
/// until the weight passed 1 / [`TIE_FACTOR`] and then take its full share
/// at once; weighing each by its own weight alone (a second) let a slow
/// instance win every draw its rival sat out, when all had joined at once.
fn thin_by_warmth(
    a: Load,
    b: Load,
    slow_start: Option<&SlowStart>,
    rng: &mut impl Rng,
) -> (Option<Load>, Option<Load>) {
    let (wa, wb) = (warming_weight(a, slow_start), warming_weight(b, slow_start));
    let top = wa.max(wb);
    let mut keep = |load: Load, weight: f64| {
        (weight >= top || rng.random::<f64>() < weight / top).then_some(load)
    };
    (keep(a, wa), keep(b, wb))
}

/// How much of a warm endpoint's traffic an endpoint warming up for
/// `load.warming_for` may have, as `slow_start` says (see [`SlowStart`]);
/// 1.0 when warm or without slow start.
fn warming_weight(load: Load, slow_start: Option<&SlowStart>) -> f64 {
    match (slow_start, load.warming_for) {
        (Some(slow_start), Some(warming_for)) => slow_start.weight(warming_for),
        _ => 1.0,
    }
}

/// Latency estimate × (calls in flight + 1) × (1 + utilization), the
/// utilization capped at [`MAX_UTILIZATION`]. Without an estimate or a
/// believed report of its own an endpoint borrows its rival's: neutral.
fn cost(own: Load, rival: Load) -> f64 {
    let latency = own.latency_ns.or(rival.latency_ns).unwrap_or(1.0);
    let utilization = own
        .utilization
        .or(rival.utilization)
        .unwrap_or(0.0)
        .clamp(0.0, MAX_UTILIZATION);
    latency * f64::from(own.in_flight.saturating_add(1)) * (1.0 + utilization)
}

/// The most reported utilization counts for: past full, an instance's
/// queue shows in its latency already, and one wild report must not
/// outweigh everything this client measured.
const MAX_UTILIZATION: f64 = 2.0;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolver::ServiceView;
    use crate::ResolverConfig;
    use std::time::Duration;

    #[test]
    fn an_unmeasured_instance_scores_as_its_rival_and_calls_in_flight_weigh() {
        let measured = |ms: f64, in_flight| Load {
            latency_ns: Some(ms * 1e6),
            in_flight,
            warming_for: None,
            utilization: None,
        };
        let new = Load {
            latency_ns: None,
            in_flight: 0,
            warming_for: None,
            utilization: None,
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

    #[test]
    fn envoy_s_slow_start_curve() {
        let slow_start = SlowStart::default();
        // max(min_weight, (t / window)^(1 / aggression)).
        assert_eq!(slow_start.weight(Duration::ZERO), 0.1);
        assert_eq!(slow_start.weight(Duration::from_secs(5)), 0.5);
        assert_eq!(slow_start.weight(Duration::from_secs(10)), 1.0);
        let eager = slow_start.aggression(2.0);
        assert!((eager.weight(Duration::from_millis(2_500)) - 0.5).abs() < 1e-9);
        let warming = |secs| Load {
            latency_ns: None,
            in_flight: 0,
            warming_for: Some(Duration::from_secs(secs)),
            utilization: None,
        };
        assert_eq!(warming_weight(warming(5), Some(&slow_start)), 0.5);
        assert_eq!(warming_weight(warming(5), None), 1.0, "no slow start");
    }

    /// A view of three endpoints and a balancer's settings with slow start.
    fn three_with_slow_start() -> (Arc<[Arc<Endpoint>]>, Setup<()>) {
        let listed: Vec<_> = (1..=3)
            .map(|n| {
                let id = format!("ratings-{n}").parse().expect("id");
                let address =
                    Address::new(&format!("http://127.0.0.1:{}", 9000 + n)).expect("address");
                (id, address)
            })
            .collect();
        let view = ServiceView::fixed(
            "ratings".parse().expect("name"),
            &listed,
            &ResolverConfig::default(),
        );
        let mut setup = Setup::new(Arc::clone(&view), ());
        setup.slow_start = Some(SlowStart::default());
        (view.endpoints(), setup)
    }

    /// The share of 30,000 picks at `now` that went to `endpoints[i]`,
    /// each given back at once.
    fn share_of(i: usize, endpoints: &[Arc<Endpoint>], setup: &Setup<()>, now: Instant) -> f64 {
        let picks = 30_000;
        let its = (0..picks)
            .filter_map(|_| least_loaded_of_two(endpoints, &[], now, setup))
            .filter(|(_, in_flight)| Arc::ptr_eq(in_flight.endpoint(), &endpoints[i]))
            .count();
        its as f64 / f64::from(picks)
    }

    /// Three endpoints that joined together (all warming alike), one of
    /// them slow: weighed by their loads alone, the slow one is drained.
    #[tokio::test(start_paused = true)]
    async fn endpoints_warming_alike_are_compared_by_their_loads() {
        let (endpoints, setup) = three_with_slow_start();
        let start = Instant::now();
        for (i, endpoint) in endpoints.iter().enumerate() {
            endpoint.start_warming(start);
            let took = Duration::from_millis(if i == 2 { 150 } else { 1 });
            endpoint.succeeded(Admission::Admitted, took, start, 0, None);
        }
        let share = share_of(2, &endpoints, &setup, start + Duration::from_millis(300));
        assert!(share < 0.02, "the slow one took {share:.3}");
    }

    /// Three endpoints, one warming since the start; picks at points of
    /// its window, each given back at once (loads alike): its share
    /// follows the curve.
    #[tokio::test(start_paused = true)]
    async fn a_warming_instance_s_share_follows_the_curve() {
        let (endpoints, setup) = three_with_slow_start();
        let start = Instant::now();
        endpoints[2].start_warming(start);
        for secs in [0, 2, 5, 8, 10, 12] {
            let share = share_of(2, &endpoints, &setup, start + Duration::from_secs(secs));
            let weight = SlowStart::default().weight(Duration::from_secs(secs));
            let expected = weight / 3.0;
            assert!(
                (share - expected).abs() < 0.03,
                "at {secs} s: {share:.3}, the curve's {expected:.3}"
            );
        }
    }

    #[test]
    fn reported_utilization_weighs_with_latency_and_calls_in_flight() {
        let load = |ms: f64, in_flight, utilization| Load {
            latency_ns: Some(ms * 1e6),
            in_flight,
            warming_for: None,
            utilization,
        };
        // Full (1.0) against idle, otherwise alike: the idle one wins,
        // whichever was drawn first.
        assert!(prefers_second(
            load(1.0, 0, Some(1.0)),
            load(1.0, 0, Some(0.0))
        ));
        assert!(!prefers_second(
            load(1.0, 0, Some(0.0)),
            load(1.0, 0, Some(1.0))
        ));
        // Reports less than half apart are a tie.
        assert!(!prefers_second(
            load(1.0, 0, Some(0.6)),
            load(1.0, 0, Some(0.2))
        ));
        // An instance without a believed report borrows its rival's.
        assert!(!prefers_second(load(1.0, 0, Some(0.9)), load(1.0, 0, None)));
        assert!(!prefers_second(load(1.0, 0, None), load(1.0, 0, Some(0.9))));
        // What this client sees still counts: an idle-reporting instance
        // with three calls of ours in flight loses to a busy-reporting one
        // with none.
        assert!(prefers_second(
            load(1.0, 3, Some(0.0)),
            load(1.0, 0, Some(0.9))
        ));
        // One wild report counts as 2.0 at most: a 4 ms instance reporting
        // 50 still loses to... nothing that is 4× slower and idle.
        assert!(!prefers_second(
            load(1.0, 0, Some(50.0)),
            load(4.0, 0, Some(0.0))
        ));
    }
}
