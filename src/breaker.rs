//! The per-instance circuit breaker: a pure state machine on tokio's clock.
//!
//! ```text
//!            failure_threshold consecutive failures
//!   Closed ───────────────────────────────────────────▶ Open(until)
//!     ▲                                                  │  │
//!     │ probe succeeds         open time passes, or the  │  │
//!     │                        instance is seen alive    ▼  │
//!     └─────────────────────────────────────────── HalfOpen │
//!                     probe fails: Open again, open time ×2 (capped)
//! ```
//!
//! The breaker is a readiness gate: [`Breaker::admit`] says whether a request
//! may go to the instance at all, so an open instance is simply skipped by
//! the balancer rather than turned into an error. In HalfOpen exactly one
//! request — the probe — is admitted until its outcome is known.
//!
//! Only outcomes that belong to the current state count: in HalfOpen only the
//! probe's, and while Open none (a slow request admitted before the breaker
//! opened says nothing new).

use rand::Rng;
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// How a breaker trips and recovers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failures (timeouts, connect errors, 5xx) that open the
    /// breaker. Default 5; the demo market uses 1, like the original.
    pub failure_threshold: u32,
    /// How long the breaker stays open the first time. Default 5 s.
    pub open_for: Duration,
    /// The longest open time, however many probes fail. Default 60 s.
    pub max_open_for: Duration,
    /// Fraction of the open time drawn at random and taken off (0.0..=1.0),
    /// so that many clients don't probe a recovering instance in lock-step.
    /// Default 0.1.
    pub jitter: f64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(60),
            jitter: 0.1,
        }
    }
}

/// The state as reported to people and dashboards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// The instance is skipped.
    Open,
    /// One probe decides.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A change of state, for logs and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Opened for this long (after jitter).
    Opened(Duration),
    /// Ready for a probe.
    HalfOpened,
    /// Back in rotation.
    Closed,
}

/// Whether a request may go to the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Yes, as a normal request.
    Admitted,
    /// Yes, as the single probe of a half-open breaker; report its outcome
    /// (or [`Breaker::release_probe`] if it ends without one).
    Probe,
    /// No: the breaker is open, or a probe is already out.
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// One instance's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
    /// The un-jittered open time of the next opening: doubles with each
    /// failed probe, back to `config.open_for` on success.
    next_open_for: Duration,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: State::Closed { failures: 0 },
            next_open_for: config.open_for,
        }
    }

    /// The current state, as of `now` (an open breaker whose time has passed
    /// reports HalfOpen even before [`poll`](Self::poll) moves it).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// When an open breaker will let a probe through.
    pub fn open_until(&self) -> Option<Instant> {
        match self.state {
            State::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Moves an open breaker whose time has passed to HalfOpen.
    pub fn poll(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen { probing: false };
                Some(Transition::HalfOpened)
            }
            _ => None,
        }
    }

    /// Whether [`admit`](Self::admit) would let a request through now;
    /// reserves nothing.
    pub fn admits(&self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } | State::HalfOpen { probing: false } => true,
            State::Open { until } => now >= until,
            State::HalfOpen { probing: true } => false,
        }
    }

    /// Asks to send a request now. A HalfOpen breaker admits exactly one
    /// probe until its outcome is recorded or released.
    pub fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        let transition = self.poll(now);
        let admission = match &mut self.state {
            State::Closed { .. } => Admission::Admitted,
            State::Open { .. } => Admission::Rejected,
            State::HalfOpen { probing: true } => Admission::Rejected,
            State::HalfOpen { probing } => {
                *probing = true;
                Admission::Probe
            }
        };
        (admission, transition)
    }

    /// Records a success of a request admitted as `admission`.
    pub fn record_success(&mut self, admission: Admission) -> Option<Transition> {
        match (self.state, admission) {
            (State::Closed { .. }, _) => {
                self.state = State::Closed { failures: 0 };
                None
            }
            (State::HalfOpen { probing: true }, Admission::Probe) => {
                self.state = State::Closed { failures: 0 };
                self.next_open_for = self.config.open_for;
                Some(Transition::Closed)
            }
            _ => None,
        }
    }

    /// Records a failure (timeout, connect error, 5xx) of a request admitted
    /// as `admission`.
    pub fn record_failure(&mut self, admission: Admission, now: Instant) -> Option<Transition> {
        match (self.state, admission) {
            (State::Closed { failures }, _) => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold.max(1) {
                    Some(self.open(now))
                } else {
                    self.state = State::Closed { failures };
                    None
                }
            }
            (State::HalfOpen { probing: true }, Admission::Probe) => {
                self.next_open_for = self
                    .next_open_for
                    .saturating_mul(2)
                    .min(self.config.max_open_for);
                Some(self.open(now))
            }
            _ => None,
        }
    }

    /// A probe ended with no verdict (cancelled, or cut short by the caller's
    /// deadline): let another request probe.
    pub fn release_probe(&mut self) {
        if let State::HalfOpen { probing: true } = self.state {
            self.state = State::HalfOpen { probing: false };
        }
    }

    /// The instance is known to be alive again — it registered anew after its
    /// lease ended, or it answered a health check — so an open breaker goes
    /// straight to HalfOpen instead of waiting out its open time.
    pub fn seen_alive(&mut self) -> Option<Transition> {
        match self.state {
            State::Open { .. } => {
                self.state = State::HalfOpen { probing: false };
                Some(Transition::HalfOpened)
            }
            _ => None,
        }
    }

    fn open(&mut self, now: Instant) -> Transition {
        let jitter = self.config.jitter.clamp(0.0, 1.0);
        let keep = 1.0 - rand::rng().random_range(0.0..=jitter);
        let open_for = self.next_open_for.mul_f64(keep);
        self.state = State::Open {
            until: now + open_for,
        };
        Transition::Opened(open_for)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    fn config(threshold: u32) -> BreakerConfig {
        BreakerConfig {
            failure_threshold: threshold,
            open_for: Duration::from_secs(1),
            max_open_for: Duration::from_secs(4),
            jitter: 0.0,
        }
    }

    fn fail(breaker: &mut Breaker) -> Option<Transition> {
        let (admission, _) = breaker.admit(Instant::now());
        breaker.record_failure(admission, Instant::now())
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_of_consecutive_failures() {
        let mut breaker = Breaker::new(config(3));
        assert_eq!(fail(&mut breaker), None);
        assert_eq!(fail(&mut breaker), None);
        // A success in between starts the count again.
        let (admission, _) = breaker.admit(Instant::now());
        breaker.record_success(admission);
        assert_eq!(fail(&mut breaker), None);
        assert_eq!(fail(&mut breaker), None);
        assert_eq!(
            fail(&mut breaker),
            Some(Transition::Opened(Duration::from_secs(1)))
        );
        assert_eq!(breaker.state(Instant::now()), BreakerState::Open);
        assert_eq!(breaker.admit(Instant::now()).0, Admission::Rejected);
    }

    #[tokio::test(start_paused = true)]
    async fn half_opens_when_the_open_time_passes_and_admits_one_probe() {
        let mut breaker = Breaker::new(config(1));
        fail(&mut breaker);
        advance(Duration::from_millis(999)).await;
        assert_eq!(breaker.admit(Instant::now()), (Admission::Rejected, None));
        advance(Duration::from_millis(1)).await;
        assert_eq!(breaker.state(Instant::now()), BreakerState::HalfOpen);
        assert_eq!(
            breaker.admit(Instant::now()),
            (Admission::Probe, Some(Transition::HalfOpened))
        );
        for _ in 0..10 {
            assert_eq!(
                breaker.admit(Instant::now()).0,
                Admission::Rejected,
                "one probe only"
            );
        }
        assert_eq!(
            breaker.record_success(Admission::Probe),
            Some(Transition::Closed)
        );
        assert_eq!(breaker.admit(Instant::now()).0, Admission::Admitted);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probes_double_the_open_time_up_to_the_cap() {
        let mut breaker = Breaker::new(config(1));
        let mut opened_for = Vec::new();
        if let Some(Transition::Opened(d)) = fail(&mut breaker) {
            opened_for.push(d);
        }
        for _ in 0..4 {
            let until = breaker.open_until().expect("open");
            tokio::time::advance(until - Instant::now()).await;
            let (admission, _) = breaker.admit(Instant::now());
            assert_eq!(admission, Admission::Probe);
            if let Some(Transition::Opened(d)) = breaker.record_failure(admission, Instant::now()) {
                opened_for.push(d);
            }
        }
        let secs: Vec<u64> = opened_for.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 4, 4]);

        // A successful probe resets the open time.
        tokio::time::advance(Duration::from_secs(4)).await;
        let (probe, _) = breaker.admit(Instant::now());
        breaker.record_success(probe);
        assert_eq!(
            fail(&mut breaker),
            Some(Transition::Opened(Duration::from_secs(1)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_probe_lets_another_request_probe() {
        let mut breaker = Breaker::new(config(1));
        fail(&mut breaker);
        advance(Duration::from_secs(1)).await;
        assert_eq!(breaker.admit(Instant::now()).0, Admission::Probe);
        assert_eq!(breaker.admit(Instant::now()).0, Admission::Rejected);
        breaker.release_probe();
        assert_eq!(breaker.admit(Instant::now()).0, Admission::Probe);
    }

    #[tokio::test(start_paused = true)]
    async fn re_registration_skips_the_rest_of_the_open_time() {
        let mut breaker = Breaker::new(config(1));
        fail(&mut breaker);
        assert_eq!(breaker.seen_alive(), Some(Transition::HalfOpened));
        assert_eq!(breaker.state(Instant::now()), BreakerState::HalfOpen);
        assert_eq!(breaker.admit(Instant::now()).0, Admission::Probe);
        // Re-registering a closed or half-open breaker changes nothing.
        assert_eq!(breaker.seen_alive(), None);
        let mut closed = Breaker::new(config(1));
        assert_eq!(closed.seen_alive(), None);
        assert_eq!(closed.state(Instant::now()), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_outcomes_do_not_count() {
        let mut breaker = Breaker::new(config(1));
        // Two requests go out while closed; the first failure opens.
        let (first, _) = breaker.admit(Instant::now());
        let (second, _) = breaker.admit(Instant::now());
        assert!(breaker.record_failure(first, Instant::now()).is_some());
        // The second's late outcome changes nothing, success or failure.
        assert_eq!(breaker.record_success(second), None);
        assert_eq!(breaker.record_failure(second, Instant::now()), None);
        assert_eq!(breaker.state(Instant::now()), BreakerState::Open);
        // In HalfOpen only the probe's outcome counts.
        advance(Duration::from_secs(1)).await;
        let (probe, _) = breaker.admit(Instant::now());
        assert_eq!(breaker.record_success(Admission::Admitted), None);
        assert_eq!(breaker.state(Instant::now()), BreakerState::HalfOpen);
        assert_eq!(breaker.record_success(probe), Some(Transition::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_only_shortens_the_open_time() {
        for _ in 0..100 {
            let mut breaker = Breaker::new(BreakerConfig {
                jitter: 0.5,
                ..config(1)
            });
            let Some(Transition::Opened(d)) = fail(&mut breaker) else {
                panic!("should open");
            };
            assert!(
                d <= Duration::from_secs(1) && d >= Duration::from_millis(500),
                "{d:?}"
            );
        }
    }
}
