//! How many calls one instance can take at once, learned from how long it
//! takes to answer them: TCP Vegas's estimate of the queue, as Netflix's
//! concurrency-limits `VegasLimit` makes it, held to Gradient2's tolerance.
//!
//! An instance that is not full answers in about its no-load time, however
//! many calls are in flight; one that is full queues them, and each answer
//! takes longer by the queue. So with `limit` calls allowed and answers
//! taking `rtt` against a no-load `floor`, about `limit × (1 − floor/rtt)`
//! of them are waiting in the instance's queue. The limit keeps that queue
//! between a sixth and a third of itself — answers between 1.2× and 1.5×
//! the no-load time, Gradient2's tolerance of 1.5: below, it grows by
//! `log10(limit)` (with no queue at all, twice that or a tenth, whichever
//! is more); above, it shrinks by
//! as much. Netflix's Vegas allows `3·log10(limit)` to `6·log10(limit)`
//! queued, which on an instance that serves 4 at once is a queue as long
//! as its capacity: twice the answer time, on every call. A shed
//! answer or a timeout — the instance saying plainly it is full — cuts the
//! limit to 0.9× at once (AIMD's backoff). While the caller sends fewer
//! than half the limit, answers say nothing about the limit and it stays.
//!
//! The no-load time can't be read off calls that flow: under a load that
//! never lets up, an answer's time always holds a queue, and a floor that
//! rose to meet it would let the queue grow without end. So, as Envoy's
//! gradient controller does, it is measured: first, and then every
//! `100 × limit` answers (at least 1,000), the limit drops to
//! [`PROBE_LIMIT`] until [`PROBE_ANSWERS`] answers sent that way have
//! come, and their median is the no-load time; then the limit is back
//! where it was. Between measurements, the queue is judged once per
//! window of `2 × limit` answers (10 to 100), on their median: a queue
//! slows every answer, while noise — a millisecond timer, a busy caller's
//! scheduler — slows some. That is how it
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

/// Answers per window, per unit of the limit.
const WINDOW_PER_LIMIT: f64 = 2.0;

/// Answers per window, at the least.
const MIN_WINDOW: u32 = 10;

/// Answers per window, at the most.
const MAX_WINDOW: u32 = 100;

/// How much a shed answer or a timeout keeps of the limit.
const BACKOFF: f64 = 0.9;

/// One instance's learned limit.
#[derive(Debug, Clone)]
pub(crate) struct VegasLimit {
    limit: f64,
    min: f64,
    max: f64,
    /// The no-load time; `None` until first measured.
    floor: Option<Duration>,
    /// The answer times of this window.
    window: Vec<Duration>,
    phase: Phase,
}

/// Whether the no-load time is being measured.
#[derive(Debug, Clone)]
enum Phase {
    /// Learning the limit; `seen` answers since the last measurement.
    Learning { seen: u64 },
    /// Measuring the no-load time: the answers so far sent with at most
    /// [`PROBE_LIMIT`] in flight; their median is the no-load time (the
    /// fastest would be an outlier: a timer that fired early).
    Probing { times: Vec<Duration> },
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
            window: Vec::new(),
            // Measured first: nothing is known of the instance yet.
            phase: Phase::Probing { times: Vec::new() },
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
            Phase::Probing { times } => {
                // Sent before the limit dropped: it may have queued.
                if in_flight <= PROBE_LIMIT {
                    times.push(rtt);
                }
                if times.len() >= PROBE_ANSWERS as usize {
                    times.sort_unstable();
                    self.floor = Some(times[times.len() / 2]);
                    self.window.clear();
                    self.phase = Phase::Learning { seen: 0 };
                }
                return self.get();
            }
            Phase::Learning { seen } => {
                *seen += 1;
                if *seen >= epoch {
                    self.phase = Phase::Probing { times: Vec::new() };
                    return self.get();
                }
            }
        }
        let Some(floor) = self.floor else {
            return self.get();
        };
        if f64::from(in_flight) * 2.0 < self.limit || rtt.is_zero() {
            return self.get();
        }
        self.window.push(rtt);
        let length =
            (self.limit * WINDOW_PER_LIMIT).clamp(f64::from(MIN_WINDOW), f64::from(MAX_WINDOW));
        if (self.window.len() as f64) < length {
            return self.get();
        }
        self.window.sort_unstable();
        let median = self.window[self.window.len() / 2];
        self.window.clear();
        let queue = self.limit * (1.0 - floor.as_secs_f64() / median.as_secs_f64());
        let step = self.limit.log10().max(0.5);
        let (low, high) = (self.limit / 6.0, self.limit / 3.0);
        if queue < low / 2.0 {
            // Hardly anything waits: grow fast (a tenth at least).
            self.set(self.limit + (2.0 * step).max(self.limit / 10.0));
        } else if queue < low {
            self.set(self.limit + step);
        } else if queue > high {
            self.set(self.limit - step);
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

    /// `limit` once its first measurement of the no-load time is done,
    /// with answers of `rtt`.
    fn measured(mut limit: VegasLimit, rtt: Duration) -> VegasLimit {
        assert_eq!(limit.get(), PROBE_LIMIT, "it measures first");
        for _ in 0..PROBE_ANSWERS {
            limit.answered(rtt, 1);
        }
        assert_eq!(limit.floor, Some(rtt));
        limit
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
        let path = drive(&mut limit, 4, 3_000);
        // Past the first thousand answers, leaving out the measurements.
        let settled: Vec<u32> = path[1_000..]
            .iter()
            .copied()
            .filter(|&l| l != PROBE_LIMIT)
            .collect();
        let (low, high) = (settled.iter().min(), settled.iter().max());
        // Capacity 4 and a queue of a sixth to a third of the limit: 5..=6,
        // give or take a step.
        assert!(
            low >= Some(&4) && high <= Some(&7),
            "settled between {low:?} and {high:?}: {path:?}"
        );
    }

    #[test]
    fn it_grows_while_answers_do_not_slow_and_stops_at_its_ceiling() {
        let mut limit = VegasLimit::new(10, 1, 200);
        let path = drive(&mut limit, 1_000, 5_000);
        let learning: Vec<u32> = path.into_iter().filter(|&l| l != PROBE_LIMIT).collect();
        assert!(learning.windows(2).all(|w| w[1] >= w[0]), "{learning:?}");
        assert_eq!(limit.get(), 200);
    }

    #[test]
    fn answers_to_a_caller_using_under_half_say_nothing() {
        let mut limit = measured(VegasLimit::default(), Duration::from_millis(1));
        let learned = limit.get();
        assert_eq!(learned, 20);
        for _ in 0..100 {
            // Very slow, but only 5 in flight.
            assert_eq!(limit.answered(Duration::from_millis(50), 5), learned);
        }
    }

    #[test]
    fn a_shed_answer_backs_off_and_the_floor_holds() {
        let mut limit = measured(VegasLimit::new(20, 3, 100), Duration::from_millis(1));
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
        assert!((4..=7).contains(&limit.get()), "{path:?}");
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
        assert!((4..=7).contains(&limit.get()), "{}", limit.get());
    }
}
