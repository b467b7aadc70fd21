//! The per-instance circuit breaker: a pure state machine on tokio's clock.
//!
//! ```text
//!            failure_threshold consecutive failures, or the
//!            failure rate over the last calls (failure_rate)
//!   Closed ───────────────────────────────────────────▶ Open(until)
//!     ▲                                                  │  │
//!     │ probe succeeds         open time passes, or the  │  │
//!     │                        instance is seen alive    ▼  │
//!     └─────────────────────────────────────────── HalfOpen │
//!                     probe fails: Open again, open time ×2 (capped)
//! ```
//!
//! An instance that trips again within twice its open time of closing is
//! *suspect*: each such trip doubles the open time (capped), as Envoy's
//! ejection multiplier does. Its health checks then tell a flaky instance
//! from a hung one:
//!
//! * a health check that fails while the breaker is open means the
//!   instance was down — paused, hung, gone — as its calls were: it is
//!   *recovering*, not flapping, and the first check that passes brings
//!   it back (half-open, then closed by one good probe), however often it
//!   hung before, as Envoy's `successful_active_health_check_uneject_host`
//!   does;
//! * a suspect instance whose checks pass while its calls failed is
//!   *flapping* (its `/_health` answers fine; its calls don't): checks may
//!   not cut its open time short, and a real request probes it.
//!
//! A trip after a quiet spell starts from `open_for` again; registering
//! anew (a new process) ends the flapping at once.
//!
//! The breaker is a readiness gate: [`Breaker::admit`] says whether a request
//! may go to the instance at all, so an open instance is simply skipped by
//! the balancer rather than turned into an error. In HalfOpen exactly one
//! request — the probe — is admitted until its outcome is known.
//!
//! Only outcomes that belong to the current state count: in HalfOpen only the
//! probe's, and while Open none (a slow request admitted before the breaker
//! opened says nothing new).
//!
//! Consecutive failures catch an instance that is down; they miss one that
//! fails a share of its calls (at 30 % failures, five in a row is rare).
//! The failure rate catches that one, as resilience4j's sliding window and
//! Envoy's failure-percentage outlier detection do: over the last
//! `window` calls, at least `min_calls` of them, a failure share above
//! `threshold` opens the breaker — unless the caller says too many of the
//! service's instances are out already (see [`Ejections`]): then a flaky
//! instance is better than none. Consecutive failures are not capped: a
//! dead instance is dead however many others are.

mod failure_rate;

pub use failure_rate::FailureRate;
pub(crate) use failure_rate::{Ejections, FailureWindow};

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
    /// Opening on the failure share of recent calls; `None` opens on
    /// consecutive failures only. Default: above 25 % of the last 20 calls
    /// (at least 10) — a 30 %-failing instance is out within a few dozen
    /// calls, a healthy one with the odd error never.
    pub failure_rate: Option<FailureRate>,
    /// Most of a service's instances that the failure rate may hold open at
    /// once, as a share (at least one when there are two or more; none
    /// when there is one). Default 0.5: past that, the bad ones are kept in
    /// use rather than leave the rest overloaded or nothing to call.
    pub max_ejected: f64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(60),
            jitter: 0.1,
            failure_rate: Some(FailureRate::default()),
            max_ejected: 0.5,
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
pub(crate) enum Transition {
    /// Opened for this long (after jitter).
    Opened(Duration),
    /// Ready for a probe.
    HalfOpened,
    /// Back in rotation.
    Closed,
}

/// Whether a request may go to the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
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
    /// `failures` in a row; `recent`, the outcomes of the last calls.
    Closed {
        failures: u32,
        recent: FailureWindow,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        probing: bool,
    },
}

/// One instance's breaker.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    state: State,
    /// The un-jittered open time of the next opening: doubles with each
    /// failed probe and with each trip soon after closing (see
    /// [`Breaker::is_flapping`]), back to `config.open_for` on a trip after
    /// a quiet spell.
    next_open_for: Duration,
    /// When the last open time ended (or would have): a trip within twice
    /// the open time after it is the same trouble coming back.
    last_until: Option<Instant>,
    /// Tripped again soon after closing: the same trouble back, so its
    /// open time doubled. Flaky or hung? Its health checks tell.
    suspect: bool,
    /// A health check went unanswered during this opening: the instance
    /// was down (hung, paused), not answering its checks while failing
    /// its calls — so it is recovering, not flapping.
    check_failed_while_open: bool,
}

impl Breaker {
    /// A closed breaker.
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: State::Closed {
                failures: 0,
                recent: FailureWindow::default(),
            },
            next_open_for: config.open_for,
            last_until: None,
            suspect: false,
            check_failed_while_open: false,
        }
    }

    /// Whether the instance is flapping: it tripped again within twice its
    /// open time of closing (as a flaky instance does; each such trip
    /// doubles the open time, up to `max_open_for`, as Envoy's ejection
    /// multiplier does) and no health check failed while it was open — its
    /// `/_health` answers while its calls fail, so a health check says
    /// nothing, and only a real request may probe it. An instance whose
    /// checks failed too was hung or down, not flaky. A trip after a quiet
    /// spell, or the instance registering anew, ends it.
    pub(crate) fn is_flapping(&self) -> bool {
        self.suspect && !self.check_failed_while_open
    }

    /// The current state, as of `now` (an open breaker whose time has passed
    /// reports HalfOpen even before [`poll`](Self::poll) moves it).
    pub(crate) fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// When an open breaker will let a probe through.
    pub(crate) fn open_until(&self) -> Option<Instant> {
        match self.state {
            State::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Moves an open breaker whose time has passed to HalfOpen.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<Transition> {
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
    pub(crate) fn admits(&self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } | State::HalfOpen { probing: false } => true,
            State::Open { until } => now >= until,
            State::HalfOpen { probing: true } => false,
        }
    }

    /// Asks to send a request now. A HalfOpen breaker admits exactly one
    /// probe until its outcome is recorded or released.
    pub(crate) fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
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
    pub(crate) fn record_success(&mut self, admission: Admission) -> Option<Transition> {
        match (self.state, admission) {
            (State::Closed { mut recent, .. }, _) => {
                recent.record(false, self.window());
                self.state = State::Closed {
                    failures: 0,
                    recent,
                };
                None
            }
            (State::HalfOpen { probing: true }, Admission::Probe) => {
                self.state = State::Closed {
                    failures: 0,
                    recent: FailureWindow::default(),
                };
                Some(Transition::Closed)
            }
            _ => None,
        }
    }

    /// Records a failure (timeout, connect error, 5xx) of a request admitted
    /// as `admission`. `may_eject` says whether the service can spare this
    /// instance if only its failure rate is against it (see [`Ejections`]).
    pub(crate) fn record_failure(
        &mut self,
        admission: Admission,
        now: Instant,
        may_eject: bool,
    ) -> Option<Transition> {
        match (self.state, admission) {
            (
                State::Closed {
                    failures,
                    mut recent,
                },
                _,
            ) => {
                let failures = failures.saturating_add(1);
                recent.record(true, self.window());
                let too_many = self
                    .config
                    .failure_rate
                    .is_some_and(|rate| may_eject && recent.exceeds(&rate));
                if failures >= self.config.failure_threshold.max(1) || too_many {
                    let soon = self
                        .last_until
                        .is_some_and(|until| now < until + self.next_open_for.saturating_mul(2));
                    self.suspect = soon;
                    self.next_open_for = if soon {
                        self.next_open_for
                            .saturating_mul(2)
                            .min(self.config.max_open_for)
                    } else {
                        self.config.open_for
                    };
                    Some(self.open(now))
                } else {
                    self.state = State::Closed { failures, recent };
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

    /// Whether it is closed (without asking the clock: an open breaker
    /// whose time has passed is not closed either).
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed { .. })
    }

    /// Its configuration.
    pub(crate) fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// How many calls the failure rate looks at.
    fn window(&self) -> u8 {
        self.config.failure_rate.map_or(1, |rate| rate.window)
    }

    /// A probe ended with no verdict (cancelled, or cut short by the caller's
    /// deadline): let another request probe.
    pub(crate) fn release_probe(&mut self) {
        if let State::HalfOpen { probing: true } = self.state {
            self.state = State::HalfOpen { probing: false };
        }
    }

    /// A health check of the instance ended, `answered` or not, while its
    /// breaker was open. Unanswered, it is evidence that the instance is
    /// down rather than flaky. Answered, an open breaker goes straight to
    /// HalfOpen instead of waiting out its open time — unless the instance
    /// is flapping ([`Breaker::is_flapping`]). A hang that ended this way
    /// also ends the doubling: the next trip starts from `open_for`.
    pub(crate) fn health_checked(&mut self, answered: bool) -> Option<Transition> {
        if !matches!(self.state, State::Open { .. }) {
            return None;
        }
        if !answered {
            self.check_failed_while_open = true;
            return None;
        }
        if self.is_flapping() {
            return None;
        }
        if self.check_failed_while_open {
            self.suspect = false;
            self.next_open_for = self.config.open_for;
        }
        self.half_open_early()
    }

    /// The instance registered anew after its lease ended: a new process,
    /// whatever made the old one flap is gone, so an open breaker goes
    /// straight to HalfOpen.
    pub(crate) fn registered_anew(&mut self) -> Option<Transition> {
        self.suspect = false;
        self.half_open_early()
    }

    fn half_open_early(&mut self) -> Option<Transition> {
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
        self.last_until = Some(now + open_for);
        self.check_failed_while_open = false;
        Transition::Opened(open_for)
    }
}

#[cfg(test)]
mod tests;
