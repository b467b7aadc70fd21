//! Opening on the failure share of recent calls, and the cap on how many of
//! a service's instances that may hold out at once.

use std::sync::atomic::{AtomicUsize, Ordering};

/// When the failure share of recent calls opens a breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureRate {
    /// Share of failures (0.0..=1.0) above which the breaker opens.
    /// Default 0.25.
    pub threshold: f64,
    /// How many of the latest calls are looked at (1..=64). Default 20.
    pub window: u8,
    /// Fewest calls in the window before the share counts, so two early
    /// failures can't eject a new instance. Default 10.
    pub min_calls: u8,
}

impl Default for FailureRate {
    fn default() -> Self {
        Self {
            threshold: 0.25,
            window: 20,
            min_calls: 10,
        }
    }
}

/// The outcomes of the latest calls, one bit each (1 = failed): recording is
/// a shift, counting a popcount, under the lock the breaker already holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FailureWindow {
    bits: u64,
    len: u8,
}

impl FailureWindow {
    /// Adds one call's outcome, forgetting the oldest past `window` calls.
    pub(crate) fn record(&mut self, failed: bool, window: u8) {
        let window = window.clamp(1, 64);
        let mask = u64::MAX >> (64 - u32::from(window));
        self.bits = ((self.bits << 1) | u64::from(failed)) & mask;
        self.len = self.len.saturating_add(1).min(window);
    }

    /// Calls in the window.
    #[cfg(test)]
    pub(crate) fn calls(&self) -> u8 {
        self.len
    }

    /// Failures among them.
    pub(crate) fn failures(&self) -> u32 {
        self.bits.count_ones()
    }

    /// Whether the failure share is above `rate`'s threshold, with enough
    /// calls to tell.
    pub(crate) fn exceeds(&self, rate: &FailureRate) -> bool {
        self.len >= rate.min_calls.max(1)
            && f64::from(self.failures()) > rate.threshold * f64::from(self.len)
    }
}

/// How many of a service's instances are out (breaker not closed), shared
/// by its endpoints, so the failure rate can be capped as Envoy's maximum
/// ejection percent caps outlier detection.
#[derive(Debug, Default)]
pub(crate) struct Ejections {
    out: AtomicUsize,
    total: AtomicUsize,
}

impl Ejections {
    /// The service now has `total` instances.
    pub(crate) fn set_total(&self, total: usize) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// One more instance is out.
    pub(crate) fn went_out(&self) {
        self.out.fetch_add(1, Ordering::Relaxed);
    }

    /// One instance is back (or gone).
    pub(crate) fn came_back(&self) {
        // Never below zero, whatever the order of events.
        let _ = self
            .out
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Whether one more may be ejected for its failure rate: fewer than
    /// `max_share` of the instances are out (at least one may be, when there
    /// are two or more; the only instance never is).
    pub(crate) fn may_eject(&self, max_share: f64) -> bool {
        let total = self.total.load(Ordering::Relaxed);
        if total < 2 {
            return false;
        }
        // Truncation is the point: the share rounds down to whole instances.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let cap = ((total as f64 * max_share.clamp(0.0, 1.0)) as usize).max(1);
        self.out.load(Ordering::Relaxed) < cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_the_latest_calls_only() {
        let mut window = FailureWindow::default();
        for _ in 0..5 {
            window.record(true, 4);
        }
        assert_eq!((window.calls(), window.failures()), (4, 4));
        window.record(false, 4);
        window.record(false, 4);
        assert_eq!((window.calls(), window.failures()), (4, 2));
        let mut wide = FailureWindow::default();
        for i in 0..100 {
            wide.record(i % 2 == 0, 64);
        }
        assert_eq!((wide.calls(), wide.failures()), (64, 32));
    }

    #[test]
    fn the_share_counts_only_past_the_minimum_and_above_the_threshold() {
        let rate = FailureRate {
            threshold: 0.25,
            window: 20,
            min_calls: 10,
        };
        let mut window = FailureWindow::default();
        for _ in 0..9 {
            window.record(true, rate.window);
        }
        assert!(!window.exceeds(&rate), "9 calls: not enough to tell");
        window.record(false, rate.window);
        assert!(window.exceeds(&rate), "9 of 10 failed");
        let mut quarter = FailureWindow::default();
        for i in 0..20 {
            quarter.record(i % 4 == 3, rate.window);
        }
        assert!(!quarter.exceeds(&rate), "exactly 25 % is not above 25 %");
        quarter.record(true, rate.window);
        assert!(quarter.exceeds(&rate), "6 of 20");
    }

    #[test]
    fn ejection_is_capped_by_share_but_one_of_two_or_more_may_go() {
        let ejections = Ejections::default();
        ejections.set_total(1);
        assert!(!ejections.may_eject(0.5), "the only instance stays");
        ejections.set_total(3);
        assert!(ejections.may_eject(0.5));
        ejections.went_out();
        assert!(!ejections.may_eject(0.5), "one of three is the cap at 50 %");
        ejections.set_total(10);
        for _ in 0..4 {
            ejections.went_out();
        }
        assert!(!ejections.may_eject(0.5), "five of ten");
        ejections.came_back();
        assert!(ejections.may_eject(0.5));
        for _ in 0..10 {
            ejections.came_back();
        }
        ejections.set_total(2);
        assert!(ejections.may_eject(0.1), "at least one of two may go");
    }
}
