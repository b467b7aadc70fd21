//! How many calls one instance can take at once, learned from how long it
//! takes to answer them: TCP Vegas's rule, as Netflix's concurrency-limits
//! `VegasLimit` applies it to requests.
//!
//! An instance that is not full answers in about its no-load time, however
//! many calls are in flight; one that is full queues them, and each answer
//! takes longer by the queue. So with `limit` calls allowed and answers
//! taking `rtt` against a no-load `floor`, about `limit × (1 − floor/rtt)`
//! of them are waiting in the instance's queue. Vegas keeps that queue
//! between `alpha = 3·log10(limit)` and `beta = 6·log10(limit)`: below, the
//! limit grows by `log10(limit)`; above, it shrinks by as much. A shed
//! answer or a timeout — the instance saying plainly it is full — cuts the
//! limit to 0.9× at once (AIMD's backoff). While the caller sends fewer
//! than half the limit, answers say nothing about the limit and it stays.
//!
//! The no-load time is the fastest answer seen. It can only fall while
//! calls flow: under a load that never lets up, an answer's time always
//! holds a queue, and a floor that rose to meet it would let the queue
//! grow without end. So, as Envoy's gradient controller does, it is
//! measured afresh now and then: every `100 × limit` answers (at least
//! 1,000), the limit drops to [`PROBE_LIMIT`] until [`PROBE_ANSWERS`]
//! answers sent that way have come, and the fastest of them is the new
//! no-load time; then the limit is back where it was. That is how it
//! follows an instance that became slower for good (a bigger answer, a
//! slower disk) instead of taking it for a queue forever.
//!
//! A pure state machine: the caller measures, this only counts. Each
//! endpoint learns its limit from every call to it; a client that asks for
//! adaptive limits ([`Limits`](crate::client::Limits)) keeps to it.

use std::time::Duration;

/// A caller's bounds on an instance's learned limit. The limit itself is
/// learned once per instance in a process, from every call to it: it is
/// the instance's, as this process sees it; each client keeps to it within
/// its own bounds. `#[non_exhaustive]`: build it from `default()` with its
/// setters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdaptiveLimit {
    /// The least calls in flight allowed, whatever was learned. Default 1:
    /// an instance that can take one call at a time gets one.
    pub min: u32,
    /// The most allowed. Default 1000, Netflix's `VegasLimit` ceiling.
    pub max: u32,
}

impl Default for AdaptiveLimit {
    fn default() -> Self {
        Self {
            min: 1,
            max: MAX_LIMIT,
        }
    }
}

impl AdaptiveLimit {
    /// Kept within `min..=max` (`min` at least 1).
    pub fn bounds(mut self, min: u32, max: u32) -> Self {
        self.min = min.max(1);
        self.max = max.max(self.min);
        self
    }

    /// `learned`, within these bounds.
    pub(crate) fn apply(&self, learned: u32) -> u32 {
        learned.clamp(self.min, self.max)
    }
}

/// The limit before anything is learned (Netflix's default).
const INITIAL_LIMIT: u32 = 20;

/// The most a limit is learned up to.
const MAX_LIMIT: u32 = 1000;

/// Answers between two measurements of the no-load time, per unit of the
/// limit.
const EPOCH_PER_LIMIT: u64 = 100;

/// Answers between two measurements of the no-load time, at the least.
const MIN_EPOCH: u64 = 1_000;

/// The limit while the no-load time is measured: Envoy's
/// `min_concurrency`.
pub(crate) const PROBE_LIMIT: u32 = 3;

/// Answers, sent with at most [`PROBE_LIMIT`] in flight, that a
/// measurement of the no-load time takes.
pub(crate) const PROBE_ANSWERS: u32 = 20;

/// How much a shed answer or a timeout keeps of the limit.
const BACKOFF: f64 = 0.9;

/// One instance's learned limit.
#[derive(Debug, Clone)]
pub(crate) struct VegasLimit {
    limit: f64,
    min: f64,
    max: f64,
    /// The no-load time; `None` until the first answer.
    floor: Option<Duration>,
    phase: Phase,
}

/// Whether the no-load time is being measured.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Learning the limit; `seen` answers since the last measurement.
    Learning { seen: u64 },
    /// Measuring the no-load time: the fastest of `seen` answers sent with
    /// at most [`PROBE_LIMIT`] in flight.
    Probing {
        seen: u32,
        fastest: Option<Duration>,
    },
}

impl Default for VegasLimit {
    /// At 20, learned within 1..=1000.
    fn default() -> Self {
        Self::new(INITIAL_LIMIT, 1, MAX_LIMIT)
    }
}

impl VegasLimit {
    /// A limit at `initial`, learned within `min..=max`.
    pub(crate) fn new(initial: u32, min: u32, max: u32) -> Self {
        Self {
            limit: f64::from(initial),
            min: f64::from(min),
            max: f64::from(max),
            floor: None,
            phase: Phase::Learning { seen: 0 },
        }
    }

    /// The limit now: calls the instance may have in flight.
    pub(crate) fn get(&self) -> u32 {
        // Within `min..=max`, both u32: the cast is exact.
        let learned = self.limit.round() as u32;
        match self.phase {
            Phase::Learning { .. } => learned,
            Phase::Probing { .. } => learned.min(PROBE_LIMIT),
        }
    }

    /// An answer came in `rtt` to a call sent with `in_flight` calls out
    /// (itself included: as Netflix's limiters count, at the send — the
    /// first calls of a burst meet no queue, and say nothing of a limit
    /// they were not near); returns the limit after it.
    pub(crate) fn answered(&mut self, rtt: Duration, in_flight: u32) -> u32 {
        let epoch = (EPOCH_PER_LIMIT * u64::from(self.get())).max(MIN_EPOCH);
        match &mut self.phase {
            Phase::Probing { seen, fastest } => {
                // Sent before the limit dropped: it may have queued.
                if in_flight <= PROBE_LIMIT {
                    *seen += 1;
                    *fastest = Some(fastest.map_or(rtt, |f| f.min(rtt)));
                }
                if *seen >= PROBE_ANSWERS {
                    self.floor = *fastest;
                    self.phase = Phase::Learning { seen: 0 };
                }
                return self.get();
            }
            Phase::Learning { seen } => {
                *seen += 1;
                if *seen >= epoch {
                    self.phase = Phase::Probing {
                        seen: 0,
                        fastest: None,
                    };
                    return self.get();
                }
            }
        }
        let floor = *self.floor.insert(self.floor.map_or(rtt, |f| f.min(rtt)));
        if f64::from(in_flight) * 2.0 < self.limit || rtt.is_zero() {
            return self.get();
        }
        let queue = (self.limit * (1.0 - floor.as_secs_f64() / rtt.as_secs_f64())).ceil();
        let log = self.limit.log10().max(0.5);
        let (alpha, beta) = (3.0 * log, 6.0 * log);
        if queue <= log {
            // Nothing waits: grow fast.
            self.set(self.limit + beta);
        } else if queue < alpha {
            self.set(self.limit + log);
        } else if queue > beta {
            self.set(self.limit - log);
        }
        self.get()
    }

    /// The instance shed a call, or let it time out: it is full now.
    /// Returns the limit after it.
    pub(crate) fn dropped(&mut self) -> u32 {
        self.set(self.limit * BACKOFF);
        self.get()
    }

    fn set(&mut self, limit: f64) {
        self.limit = limit.clamp(self.min, self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instance that works on `capacity` calls at once, each for
    /// `work`, and queues the rest: a caller keeping it `limit` full sees
    /// answers in `work × max(1, limit / capacity)`.
    fn rtt_at(limit: u32, capacity: u32, work: Duration) -> Duration {
        let turns = f64::from(limit.max(capacity)) / f64::from(capacity);
        work.mul_f64(turns)
    }

    /// Runs a caller that keeps `limit` calls in flight on such an
    /// instance for `answers` answers; returns the limits it went through.
    fn drive(limit: &mut VegasLimit, capacity: u32, answers: usize) -> Vec<u32> {
        let work = Duration::from_millis(5);
        (0..answers)
            .map(|_| {
                let now = limit.get();
                limit.answered(rtt_at(now, capacity, work), now)
            })
            .collect()
    }

    #[test]
    fn it_shrinks_to_what_a_full_instance_can_take_and_stays_near() {
        let mut limit = VegasLimit::default();
        // The first answers came before the queue built up.
        limit.answered(Duration::from_millis(5), 20);
        let path = drive(&mut limit, 4, 400);
        let settled = &path[200..];
        let (low, high) = (settled.iter().min(), settled.iter().max());
        // Capacity 4 and a queue of about alpha..beta: 4 + 2..=5.
        assert!(
            low >= Some(&5) && high <= Some(&10),
            "settled between {low:?} and {high:?}: {path:?}"
        );
    }

    #[test]
    fn it_grows_while_answers_do_not_slow_and_stops_at_its_ceiling() {
        let mut limit = VegasLimit::new(10, 1, 200);
        let path = drive(&mut limit, 1_000, 400);
        assert!(path.windows(2).all(|w| w[1] >= w[0]), "{path:?}");
        assert_eq!(limit.get(), 200);
    }

    #[test]
    fn answers_to_a_caller_using_under_half_say_nothing() {
        let mut limit = VegasLimit::default();
        let learned = limit.answered(Duration::from_millis(1), 20);
        for _ in 0..100 {
            // Very slow, but only 5 in flight.
            assert_eq!(limit.answered(Duration::from_millis(50), 5), learned);
        }
    }

    #[test]
    fn a_shed_answer_backs_off_and_the_floor_holds() {
        let mut limit = VegasLimit::new(20, 3, 100);
        assert_eq!(limit.dropped(), 18);
        for _ in 0..100 {
            limit.dropped();
        }
        assert_eq!(limit.get(), 3);
    }

    #[test]
    fn the_no_load_time_is_measured_afresh_and_follows_a_slower_instance() {
        // Loaded from its first answer: the first floor holds a queue, and
        // only the first measurement finds the real one.
        let mut limit = VegasLimit::default();
        let path = drive(&mut limit, 4, 5_000);
        // It measured at the probe limit, now and then, and came back.
        let probes = path
            .windows(2)
            .filter(|w| w[1] == PROBE_LIMIT && w[0] > w[1]);
        assert!(probes.count() >= 2, "{path:?}");
        assert!((5..=10).contains(&limit.get()), "{path:?}");
        // Now every answer takes 4× as long, queue or not: at first that
        // reads as a queue; once measured, as the new no-load time.
        let work = Duration::from_millis(20);
        for _ in 0..5_000 {
            let now = limit.get();
            limit.answered(rtt_at(now, 4, work), now);
        }
        assert_eq!(
            limit.floor,
            Some(work),
            "the floor moved to the new no-load time"
        );
        assert!((5..=10).contains(&limit.get()), "{}", limit.get());
    }
}
