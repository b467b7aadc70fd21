//! How many extra attempts (retries, hedges) a client may send: a share of
//! its recent calls plus a small floor per second, counted without a lock.
//!
//! The rule is tower's `TpsBudget`'s: over the last 10 s, extra attempts
//! may number `ratio` × calls + `floor_per_sec` × 10, so they can never
//! multiply the load on a struggling service. Ours differs in how it counts:
//! every call deposits, so the count is on the per-call path, and there
//! `TpsBudget` takes a mutex and reads the clock. Here a deposit is one
//! atomic add on the current second's slot, at a time the caller already
//! has (the call's start), and only a withdrawal — the rare case — reads
//! all ten slots.

use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;

/// Seconds the budget remembers.
const WINDOW_SECS: u64 = 10;

/// Sheds in the window below which a shed call is always retried: the
/// first calls of a quiet client, one of which met the one full instance,
/// say nothing of how many are full.
const MIN_SHEDS: u64 = 10;

/// A budget of extra attempts over a 10 s window. Share it (in an `Arc`)
/// between the clones of a client.
#[derive(Debug)]
pub(crate) struct WindowBudget {
    started: Instant,
    /// Extra attempts allowed per call.
    ratio: f64,
    /// Extra attempts allowed per window however few calls there were.
    floor: u64,
    /// Calls, one slot per second of the window.
    deposits: Slots,
    /// Extra attempts made, likewise.
    withdrawals: Slots,
    /// Attempts instances shed (answered busy), likewise: past half the
    /// calls, a retry would only add to the load of instances that are
    /// all full (see [`WindowBudget::mostly_shed`]).
    sheds: Slots,
}

impl WindowBudget {
    /// Allows `ratio` of recent calls plus `floor_per_sec`. Out-of-range
    /// settings are brought in range (a negative or NaN ratio allows
    /// nothing beyond the floor).
    pub(crate) fn new(ratio: f32, floor_per_sec: u32) -> Self {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            f64::from(ratio.clamp(0.0, 1000.0))
        };
        Self {
            started: Instant::now(),
            ratio,
            floor: u64::from(floor_per_sec.min(1_000_000)) * WINDOW_SECS,
            deposits: Slots::default(),
            withdrawals: Slots::default(),
            sheds: Slots::default(),
        }
    }

    /// Counts an attempt an instance shed at `now` (it was full); says
    /// whether sheds now number half the calls of the window or more, and
    /// at least [`MIN_SHEDS`] — then most instances are full, and retrying
    /// elsewhere only moves the load around: gRPC's retry throttling stops
    /// retries on a like signal.
    pub(crate) fn mostly_shed(&self, now: Instant) -> bool {
        let second = self.second(now);
        self.sheds.add(second);
        let sheds = self.sheds.sum(second);
        sheds >= MIN_SHEDS && sheds * 2 >= self.deposits.sum(second)
    }

    /// Counts a call made at `at`.
    pub(crate) fn deposit_at(&self, at: Instant) {
        self.deposits.add(self.second(at));
    }

    /// Takes one extra attempt at `now`, if the window allows it.
    pub(crate) fn withdraw_at(&self, now: Instant) -> bool {
        let second = self.second(now);
        let calls = self.deposits.sum(second);
        // Float to int: the product is finite and non-negative (the ratio
        // is clamped), and `as` saturates.
        let allowed = self.floor + (self.ratio * calls as f64) as u64;
        // Taken first and given back if over, so two racing withdrawals
        // can't both take the last one.
        let taken = self.withdrawals.add(second);
        if self.withdrawals.sum(second) > allowed {
            self.withdrawals.remove(taken);
            return false;
        }
        true
    }

    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_secs()
    }
}

/// Counts per second over the window: each slot holds the second it
/// counts (high 32 bits) and its count (low 32 bits), so a slot from an
/// older round of the window is recognised and started afresh.
#[derive(Debug, Default)]
struct Slots([AtomicU64; WINDOW_SECS as usize]);

/// Where a count was added, to take it back.
struct Taken {
    slot: usize,
    second: u64,
}

impl Slots {
    fn add(&self, second: u64) -> Taken {
        let stamp = (second & 0xffff_ffff) << 32;
        let slot = (second % WINDOW_SECS) as usize;
        let cell = &self.0[slot];
        let mut seen = cell.load(Ordering::Relaxed);
        loop {
            let next = if seen & !0xffff_ffff == stamp {
                seen.saturating_add(1)
            } else {
                stamp | 1
            };
            match cell.compare_exchange_weak(seen, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Taken { slot, second },
                Err(now) => seen = now,
            }
        }
    }

    fn remove(&self, taken: Taken) {
        let stamp = (taken.second & 0xffff_ffff) << 32;
        let cell = &self.0[taken.slot];
        // If the slot moved on to a newer second, the count went with it.
        let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |seen| {
            (seen & !0xffff_ffff == stamp && seen & 0xffff_ffff > 0).then(|| seen - 1)
        });
    }

    /// The counts of the window ending at `second`.
    fn sum(&self, second: u64) -> u64 {
        let oldest = second.saturating_sub(WINDOW_SECS - 1) & 0xffff_ffff;
        let newest = second & 0xffff_ffff;
        self.0
            .iter()
            .map(|cell| cell.load(Ordering::Relaxed))
            .filter(|seen| (oldest..=newest).contains(&(seen >> 32)))
            .map(|seen| seen & 0xffff_ffff)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const WINDOW: Duration = Duration::from_secs(WINDOW_SECS);

    #[tokio::test(start_paused = true)]
    async fn the_floor_allows_its_share_of_a_window_without_calls() {
        let budget = WindowBudget::new(0.0, 2);
        let now = Instant::now();
        let granted = (0..30).filter(|_| budget.withdraw_at(now)).count();
        assert_eq!(granted, 20, "2 per second over a 10 s window");
        assert!(!budget.withdraw_at(now + Duration::from_secs(9)));
        assert!(budget.withdraw_at(now + WINDOW), "the window moved on");
    }

    #[tokio::test(start_paused = true)]
    async fn calls_earn_their_ratio_and_expire_with_the_window() {
        let budget = WindowBudget::new(0.2, 0);
        let now = Instant::now();
        for _ in 0..100 {
            budget.deposit_at(now);
        }
        let granted = (0..50).filter(|_| budget.withdraw_at(now)).count();
        assert_eq!(granted, 20, "a fifth of 100 calls");
        let later = now + WINDOW;
        assert!(
            !budget.withdraw_at(later),
            "calls older than the window earn nothing"
        );
        budget.deposit_at(later);
        for _ in 0..4 {
            budget.deposit_at(later);
        }
        assert!(budget.withdraw_at(later), "5 new calls earn one");
        assert!(!budget.withdraw_at(later));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_withdrawal_takes_nothing() {
        let budget = WindowBudget::new(0.5, 0);
        let now = Instant::now();
        budget.deposit_at(now);
        budget.deposit_at(now);
        assert!(budget.withdraw_at(now));
        for _ in 0..5 {
            assert!(!budget.withdraw_at(now));
        }
        budget.deposit_at(now);
        budget.deposit_at(now);
        assert!(budget.withdraw_at(now), "refusals were given back");
    }

    #[tokio::test(start_paused = true)]
    async fn sheds_past_half_the_calls_say_most_instances_are_full() {
        let budget = WindowBudget::new(0.2, 10);
        let now = Instant::now();
        // One call, shed: too few to say anything.
        budget.deposit_at(now);
        assert!(!budget.mostly_shed(now), "1 of 1, but only 1");
        for _ in 0..39 {
            budget.deposit_at(now);
        }
        let mostly: Vec<bool> = (2..=20).map(|_| budget.mostly_shed(now)).collect();
        assert!(mostly[..18].iter().all(|m| !m), "under 20 of 40 calls");
        assert!(mostly[18], "20 of 40 calls");
        let later = now + WINDOW;
        for _ in 0..40 {
            budget.deposit_at(later);
        }
        assert!(!budget.mostly_shed(later), "the window moved on");
    }

    #[tokio::test(start_paused = true)]
    async fn nonsense_settings_are_brought_in_range() {
        let now = Instant::now();
        let nan = WindowBudget::new(f32::NAN, 0);
        nan.deposit_at(now);
        assert!(!nan.withdraw_at(now));
        let huge = WindowBudget::new(f32::INFINITY, u32::MAX);
        assert!(huge.withdraw_at(now));
    }
}
