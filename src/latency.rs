//! A peak-sensitive moving average of an instance's latency: what the
//! latency-aware balancer compares instances by.
//!
//! The rule is linkerd2's and tower's `load::PeakEwma`: an answer slower
//! than the estimate replaces it at once (a slowdown is believed the moment
//! it shows), a faster one pulls the estimate down by a weight that grows
//! with the time since the previous answer (decay time τ), and between
//! answers the estimate itself decays towards zero with the same τ. That
//! last part is what brings a drained instance back: once it has been left
//! alone long enough to look cheap again it gets a call, and that call's
//! latency says whether it healed.
//!
//! The balancer multiplies the estimate by the calls in flight plus one, so
//! a fast instance that is already busy can lose to an idle one.

use std::time::Duration;
use tokio::time::Instant;

/// An instance's latency estimate. `Copy` and tiny: it lives in the
/// endpoint's state, under the lock the breaker already takes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct PeakEwma {
    /// The estimate in nanoseconds as of `at`, and `at`; `None` until the
    /// first answer (or after a reset), so that the balancer can treat an
    /// unmeasured instance as neutral rather than as free.
    last: Option<(f64, Instant)>,
}

impl PeakEwma {
    /// Takes in one answer's latency.
    pub(crate) fn observe(&mut self, latency: Duration, now: Instant, decay: Duration) {
        let sample = nanos(latency);
        let estimate = match self.last {
            None => sample,
            Some((estimate, at)) => {
                let kept = weight(now.saturating_duration_since(at), decay);
                if sample > estimate * kept {
                    sample
                } else {
                    estimate * kept + sample * (1.0 - kept)
                }
            }
        };
        self.last = Some((estimate, now));
    }

    /// Takes in how long a failed attempt took: a peak if it is slower than
    /// the estimate (a timeout is the slowest answer there is), and nothing
    /// otherwise — a refused connection fails fast, and that says nothing
    /// about how fast the instance answers.
    pub(crate) fn observe_failure(&mut self, took: Duration, now: Instant, decay: Duration) {
        let sample = nanos(took);
        if self
            .estimate(now, decay)
            .is_none_or(|estimate| sample > estimate)
        {
            self.last = Some((sample, now));
        }
    }

    /// The estimate now, in nanoseconds (decayed since the last answer);
    /// `None` before the first answer.
    pub(crate) fn estimate(&self, now: Instant, decay: Duration) -> Option<f64> {
        self.last
            .map(|(estimate, at)| estimate * weight(now.saturating_duration_since(at), decay))
    }

    /// Forgets every answer: the instance is new again (it came back from an
    /// outage, and what it measured before says nothing about it now).
    pub(crate) fn reset(&mut self) {
        self.last = None;
    }
}

/// How much of an estimate is kept after `elapsed`: e^(-elapsed/τ).
fn weight(elapsed: Duration, decay: Duration) -> f64 {
    let decay = nanos(decay);
    if decay <= 0.0 {
        return 0.0;
    }
    (-nanos(elapsed) / decay).exp()
}

fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAU: Duration = Duration::from_secs(5);

    fn ms(estimate: Option<f64>) -> f64 {
        estimate.expect("an estimate") / 1e6
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_known_before_the_first_answer() {
        let ewma = PeakEwma::default();
        assert_eq!(ewma.estimate(Instant::now(), TAU), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slower_answer_replaces_the_estimate_at_once() {
        let mut ewma = PeakEwma::default();
        let now = Instant::now();
        ewma.observe(Duration::from_millis(1), now, TAU);
        ewma.observe(Duration::from_millis(40), now, TAU);
        assert_eq!(ms(ewma.estimate(now, TAU)), 40.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_faster_answer_pulls_it_down_by_the_time_since_the_last() {
        let mut ewma = PeakEwma::default();
        let start = Instant::now();
        ewma.observe(Duration::from_millis(40), start, TAU);
        // At once: a faster answer barely moves it.
        ewma.observe(Duration::from_millis(1), start, TAU);
        assert_eq!(ms(ewma.estimate(start, TAU)), 40.0);
        // One τ later: e^-1 of the old estimate, the rest from the sample.
        let later = start + TAU;
        ewma.observe(Duration::from_millis(1), later, TAU);
        let expected = 40.0 * (-1f64).exp() + 1.0 * (1.0 - (-1f64).exp());
        assert!((ms(ewma.estimate(later, TAU)) - expected).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn left_alone_it_decays_towards_zero() {
        let mut ewma = PeakEwma::default();
        let start = Instant::now();
        ewma.observe(Duration::from_millis(40), start, TAU);
        let one_tau = ms(ewma.estimate(start + TAU, TAU));
        assert!((one_tau - 40.0 * (-1f64).exp()).abs() < 1e-9);
        assert!(ms(ewma.estimate(start + TAU * 5, TAU)) < 0.3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_failure_is_a_peak_and_a_fast_one_says_nothing() {
        let mut ewma = PeakEwma::default();
        let now = Instant::now();
        ewma.observe(Duration::from_millis(2), now, TAU);
        ewma.observe_failure(Duration::from_micros(100), now, TAU);
        assert_eq!(
            ms(ewma.estimate(now, TAU)),
            2.0,
            "a refusal is not an answer"
        );
        ewma.observe_failure(Duration::from_millis(500), now, TAU);
        assert_eq!(
            ms(ewma.estimate(now, TAU)),
            500.0,
            "a timeout is believed at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_forgets_everything() {
        let mut ewma = PeakEwma::default();
        ewma.observe(Duration::from_millis(40), Instant::now(), TAU);
        ewma.reset();
        assert_eq!(ewma.estimate(Instant::now(), TAU), None);
    }
}
