//! A [`ServiceClient`](super::ServiceClient)'s settings, grouped by what
//! they bound. Each type is `#[non_exhaustive]`: build it from `default()`
//! with its setters, so that a setting added later breaks no caller.
//!
//! ```
//! use beacon::client::{Attempts, Retries};
//! use std::time::Duration;
//! let attempts = Attempts::default().timeout(Duration::from_millis(250));
//! let retries = Retries::default().max_attempts(2).budget(0.1, 5);
//! # let _ = (attempts, retries);
//! ```

use crate::endpoint::Endpoint;
use crate::limit::AdaptiveLimit;
use std::time::Duration;

/// The bounds on one attempt (one try on one instance).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Attempts {
    /// Longest wait for one instance's answer: its headers and whole body
    /// for a call read whole, its headers for a streamed answer.
    pub timeout: Duration,
    /// Largest response body read whole.
    pub max_response_bytes: usize,
    /// Longest a streamed response body may take after its headers.
    pub body_timeout: Option<Duration>,
    /// Whether each request tells the instance how long it will be waited
    /// for ([`DEADLINE_HEADER`](crate::deadline::DEADLINE_HEADER)).
    pub send_deadline: bool,
}

impl Default for Attempts {
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl Attempts {
    /// `timeout`, with the other settings' defaults.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            max_response_bytes: 8 * 1024 * 1024,
            body_timeout: None,
            send_deadline: true,
        }
    }

    /// Longest wait for one instance's answer (its headers and whole body;
    /// its headers only when the answer streams). Default is 1 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest response body read whole; a longer one fails the call (a
    /// streamed one has no limit). Default is 8 MiB.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Longest a streamed response body may take after its headers came.
    /// Default is `None`: as long as it takes.
    pub fn body_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Whether to tell each instance how long its attempt will be waited
    /// for, so that one behind a
    /// [`DeadlineLayer`](crate::deadline::DeadlineLayer) refuses spent
    /// budgets. About 2,200 instructions a call on each side over HTTP/2:
    /// turn it off for instances that don't read it. Default is `true`.
    pub fn send_deadline(mut self, send: bool) -> Self {
        self.send_deadline = send;
        self
    }
}

impl From<Duration> for Attempts {
    fn from(timeout: Duration) -> Self {
        Self::new(timeout)
    }
}

/// When a failed idempotent call is sent again, to an instance it has not
/// tried.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Retries {
    /// Most attempts per call, the first included.
    pub max_attempts: u32,
    /// First pause before a retry; doubles per retry, with jitter.
    pub backoff: Duration,
    /// Longest pause before a retry.
    pub backoff_cap: Duration,
    /// Retries allowed as a fraction of recent calls.
    pub ratio: f32,
    /// Retries per second allowed however few calls there are.
    pub floor_per_sec: u32,
    /// Largest streamed request body kept to be sent again.
    pub replay_limit: usize,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Duration::from_millis(10),
            backoff_cap: Duration::from_millis(200),
            ratio: 0.2,
            floor_per_sec: 10,
            replay_limit: 64 * 1024,
        }
    }
}

impl Retries {
    /// Most attempts per call, the first included (1: no retries).
    /// Default is 3.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The pause before the first retry, doubling per retry up to `cap`.
    /// Default is 10 ms, capped at 200 ms.
    pub fn backoff(mut self, first: Duration, cap: Duration) -> Self {
        self.backoff = first;
        self.backoff_cap = cap;
        self
    }

    /// The retry budget: retries as a share of recent calls (`ratio`), and
    /// `floor_per_sec` however few calls there are — what keeps retries
    /// from multiplying an overload. Default is 0.2 and 10 per second.
    pub fn budget(mut self, ratio: f32, floor_per_sec: u32) -> Self {
        self.ratio = ratio;
        self.floor_per_sec = floor_per_sec;
        self
    }

    /// Largest streamed request body kept to be sent again on a retry or a
    /// hedge; a longer one goes to one instance only, and its call says so
    /// if that fails ([`ClientError::NotRetried`](super::ClientError::NotRetried)).
    /// Default is 64 KiB.
    pub fn replay_limit(mut self, bytes: usize) -> Self {
        self.replay_limit = bytes;
        self
    }
}

/// How much one caller may ask of one instance at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Limits {
    /// Most attempts in flight to one instance.
    pub max_in_flight: Option<u32>,
    /// Keep to each instance's learned limit, within these bounds.
    pub adaptive: Option<AdaptiveLimit>,
}

impl Limits {
    /// Most attempts in flight to one instance (a bulkhead, as Envoy's
    /// per-host limits are): the balancer passes over an instance at its
    /// cap, and a call that finds every instance at its cap fails at once
    /// with [`ClientError::AllAtCapacity`](super::ClientError::AllAtCapacity).
    /// Hedges and retries count too. Default is `None`: no cap.
    pub fn max_in_flight(mut self, cap: Option<u32>) -> Self {
        self.max_in_flight = cap;
        self
    }

    /// Caps each instance at the calls it can take at once, as learned
    /// from its answers (TCP Vegas's rule: the limit grows while answers
    /// don't slow, and shrinks as they queue, or at once when the instance
    /// sheds a call or lets one time out; see [`AdaptiveLimit`]). Past it
    /// the balancer prefers other instances; with every one at its limit a
    /// call fails at once with `AllAtCapacity` instead of queueing. With
    /// `max_in_flight` too, the lower of the two holds. Default is `None`.
    pub fn adaptive(mut self, limit: Option<AdaptiveLimit>) -> Self {
        self.adaptive = limit;
        self
    }

    /// The cap on `endpoint` now, if any.
    pub(crate) fn cap(&self, endpoint: &Endpoint) -> Option<u32> {
        let learned = self.adaptive.map(|a| a.apply(endpoint.learned_limit()));
        match (self.max_in_flight, learned) {
            (Some(fixed), Some(learned)) => Some(fixed.min(learned)),
            (fixed, learned) => fixed.or(learned),
        }
    }
}

/// Slow start, as Envoy's: an instance that joins a service already in
/// use, or comes back from an open breaker, is often cold (caches, JIT,
/// connection pools), and the least-loaded balancer would hand it every
/// call its empty queue attracts. With slow start it weighs as
/// `max(min_weight, (t / window)^(1 / aggression))` of a warm instance for
/// `window` after it joined: it takes part in only that share of the
/// balancer's draws, so its share of the calls follows the curve (about
/// `weight / n` of n instances' calls when their loads are alike; less
/// while it also answers slower). The instances of the first registry answer
/// start warm. Only the least-loaded balancer weighs it. `#[non_exhaustive]`:
/// build it from `default()` with its setters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SlowStart {
    /// How long an instance warms up. Default 10 s.
    pub window: Duration,
    /// How the weight grows over the window: 1.0 linearly, more for a
    /// faster start. Default 1.0 (Envoy's).
    pub aggression: f64,
    /// The least weight, at the start. Default 0.1 (Envoy's 10 %).
    pub min_weight: f64,
}

impl Default for SlowStart {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            aggression: 1.0,
            min_weight: 0.1,
        }
    }
}

impl SlowStart {
    /// Warming up for `window`.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The weight grows as `(t / window)^(1 / aggression)` (above 0).
    pub fn aggression(mut self, aggression: f64) -> Self {
        self.aggression = aggression;
        self
    }

    /// The least weight (0 to 1).
    pub fn min_weight(mut self, weight: f64) -> Self {
        self.min_weight = weight;
        self
    }

    /// The weight of an instance warming up for `warming_for`: 1 once the
    /// window has passed.
    pub fn weight(&self, warming_for: Duration) -> f64 {
        if warming_for >= self.window || self.window.is_zero() {
            return 1.0;
        }
        let time_factor = warming_for.as_secs_f64() / self.window.as_secs_f64();
        let aggression = if self.aggression > 0.0 {
            self.aggression
        } else {
            1.0
        };
        time_factor
            .powf(1.0 / aggression)
            .max(self.min_weight.clamp(0.0, 1.0))
            .max(f64::MIN_POSITIVE)
    }
}

/// When and how often to hedge. `#[non_exhaustive]`: build it from
/// `default()` with its setters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Hedging {
    /// The hedge delay is this quantile of the service's recent attempt
    /// latencies. Default 0.95.
    pub quantile: f64,
    /// Shortest hedge delay. Default 5 ms: on a fast service the p95 is
    /// below a millisecond, and hedging that early would mostly duplicate
    /// calls that were about to answer.
    pub min_delay: Duration,
    /// Longest hedge delay, and the delay while there are too few samples
    /// to know better (under 20). Default 200 ms. The attempt timeout caps
    /// it too.
    pub max_delay: Duration,
    /// Hedges allowed as a share of recent calls. Default 0.1.
    pub ratio: f32,
    /// Hedges per second allowed however few calls there are. Default 5.
    pub floor_per_sec: u32,
}

impl Default for Hedging {
    fn default() -> Self {
        Self {
            quantile: 0.95,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
            ratio: 0.1,
            floor_per_sec: 5,
        }
    }
}

impl Hedging {
    /// Hedge after this quantile of the service's recent attempt
    /// latencies. Default is 0.95.
    pub fn quantile(mut self, quantile: f64) -> Self {
        self.quantile = quantile;
        self
    }

    /// Keep the hedge delay between `min` and `max` (`max` is also the
    /// delay while there are too few samples). Default is 5 ms to 200 ms.
    pub fn delay_between(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.max_delay = max;
        self
    }

    /// The hedge budget: hedges as a share of recent calls, and
    /// `floor_per_sec` however few calls there are. Default is 0.1 and 5
    /// per second.
    pub fn budget(mut self, ratio: f32, floor_per_sec: u32) -> Self {
        self.ratio = ratio;
        self.floor_per_sec = floor_per_sec;
        self
    }

    /// The same, never waiting longer than `limit` to hedge (an attempt
    /// timeout: a hedge after it would come too late).
    pub(crate) fn within(mut self, limit: Duration) -> Self {
        self.min_delay = self.min_delay.min(limit);
        self.max_delay = self.max_delay.min(limit);
        self
    }
}
