//! Recent attempt latencies of one service, for the hedge delay: a
//! log-linear histogram in atomics over two rotating windows.
//!
//! Buckets are exact below 16 µs and then eight per power of two (about
//! 12 % wide) up to about 16 s. Recording is one atomic add; a percentile
//! sums the current and the previous window, so it always covers between
//! one and two periods of recent calls. Rotation is lock-free and
//! approximate: a sample racing a rotation may land in the window being
//! cleared, which only loses that sample.

use std::{
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
    time::Duration,
};
use tokio::time::Instant;

const EXACT: usize = 16;
const PER_OCTAVE: usize = 8;
const OCTAVES: usize = 21;
const BUCKETS: usize = EXACT + PER_OCTAVE * OCTAVES;

/// Every latency since the start, for metrics: counts at bucket bounds (in
/// seconds, each count including the smaller ones), their total and sum.
#[derive(Debug, Clone, PartialEq)]
pub struct CumulativeLatencies {
    /// `(bound in seconds, latencies at or below it)`, bounds ascending.
    pub buckets: Vec<(f64, u64)>,
    /// All latencies taken in.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

/// Latencies of the last one to two `period`s — and, for metrics, of all
/// time.
#[derive(Debug)]
pub struct LatencyHistogram {
    windows: [Box<[AtomicU32]>; 2],
    /// Never cleared: Prometheus histograms only count up.
    all_time: Box<[AtomicU64]>,
    all_time_micros: AtomicU64,
    /// The period number the current window belongs to.
    epoch: AtomicU64,
    started: Instant,
    /// The window length in nanoseconds (as `u64`: a 128-bit division per
    /// recorded latency would cost more than the rest of `record`).
    period_ns: u64,
}

impl LatencyHistogram {
    /// An empty histogram whose windows turn over every `period`.
    pub fn new(period: Duration) -> Self {
        let window = || (0..BUCKETS).map(|_| AtomicU32::new(0)).collect();
        Self {
            windows: [window(), window()],
            all_time: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            all_time_micros: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            started: Instant::now(),
            period_ns: nanos(period.max(Duration::from_millis(1))),
        }
    }

    /// Takes in one latency, as of `now`.
    pub fn record(&self, latency: Duration, now: Instant) {
        let window = self.rotate(now);
        let micros = nanos(latency) / 1_000;
        let bucket = bucket(micros);
        self.windows[window][bucket].fetch_add(1, Ordering::Relaxed);
        self.all_time[bucket].fetch_add(1, Ordering::Relaxed);
        self.all_time_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Every latency taken in since the start, counted at `bounds`
    /// (seconds, ascending). A latency counts at a bound when its whole
    /// bucket lies at or below it, so counts err low by at most a bucket.
    pub fn cumulative(&self, bounds: &[f64]) -> CumulativeLatencies {
        let counts: Vec<u64> = self
            .all_time
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let buckets = bounds
            .iter()
            .map(|&bound| {
                let within = counts
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| upper_bound(*i) as f64 / 1e6 <= bound)
                    .map(|(_, c)| c)
                    .sum();
                (bound, within)
            })
            .collect();
        CumulativeLatencies {
            buckets,
            count: counts.iter().sum(),
            sum: self.all_time_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }

    /// The `q` quantile (0..=1) of the recent latencies, as of `now`;
    /// `None` with fewer than `min_samples` of them.
    pub fn quantile(&self, q: f64, min_samples: u32, now: Instant) -> Option<Duration> {
        self.rotate(now);
        // On the stack: this runs every few milliseconds under load.
        let mut counts = [0u64; BUCKETS];
        for window in &self.windows {
            for (count, bucket) in counts.iter_mut().zip(window.iter()) {
                *count += u64::from(bucket.load(Ordering::Relaxed));
            }
        }
        let total: u64 = counts.iter().sum();
        if total < u64::from(min_samples.max(1)) {
            return None;
        }
        // Rounds up: the quantile is a sample at or below which q of them lie.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_micros(upper_bound(i)));
            }
        }
        None
    }

    /// Moves to the window of `now`'s period, clearing what it held from
    /// two periods ago; returns its index.
    fn rotate(&self, now: Instant) -> usize {
        let epoch = nanos(now.saturating_duration_since(self.started)) / self.period_ns;
        let seen = self.epoch.load(Ordering::Relaxed);
        if epoch > seen
            && self
                .epoch
                .compare_exchange(seen, epoch, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            clear(&self.windows[index(epoch)]);
            if epoch > seen + 1 {
                // Idle for more than a period: the previous window is old too.
                clear(&self.windows[index(epoch + 1)]);
            }
        }
        index(epoch)
    }
}

/// `duration` in nanoseconds, saturating (at 584 years).
fn nanos(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(duration.subsec_nanos()))
}

fn index(epoch: u64) -> usize {
    usize::from(epoch % 2 == 1)
}

fn clear(window: &[AtomicU32]) {
    for count in window {
        count.store(0, Ordering::Relaxed);
    }
}

/// The bucket of a latency in microseconds.
fn bucket(micros: u64) -> usize {
    if micros < EXACT as u64 {
        // Below 16: exact, and it fits.
        return usize::try_from(micros).unwrap_or(0);
    }
    let octave = 63 - micros.leading_zeros() as usize; // ≥ 4
    let sub = usize::try_from((micros >> (octave - 3)) & 7).unwrap_or(0);
    (EXACT + (octave - 4) * PER_OCTAVE + sub).min(BUCKETS - 1)
}

/// The largest latency (µs) bucket `i` holds.
fn upper_bound(i: usize) -> u64 {
    if i < EXACT {
        return i as u64;
    }
    let octave = (i - EXACT) / PER_OCTAVE + 4;
    let sub = ((i - EXACT) % PER_OCTAVE) as u64;
    ((8 + sub + 1) << (octave - 3)) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_low_and_about_an_eighth_wide_above() {
        for micros in [0, 1, 15, 16, 17, 100, 1_000, 40_000, 1_000_000, 10_000_000] {
            let upper = upper_bound(bucket(micros));
            assert!(upper >= micros, "{micros} µs in a bucket up to {upper}");
            assert!(
                upper as f64 <= micros as f64 * 1.125 + 1.0,
                "{micros} µs in a bucket up to {upper}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_quantile_is_of_the_recent_windows_only() {
        let histogram = LatencyHistogram::new(Duration::from_secs(10));
        let now = Instant::now();
        assert_eq!(histogram.quantile(0.95, 20, now), None, "no samples yet");
        for i in 1..=100u64 {
            histogram.record(Duration::from_millis(i), now);
        }
        let p95 = histogram.quantile(0.95, 20, now).expect("enough samples");
        assert!(
            p95 >= Duration::from_millis(95) && p95 <= Duration::from_millis(107),
            "{p95:?}"
        );
        // A period later the old samples still count (previous window)...
        let later = now + Duration::from_secs(10);
        histogram.record(Duration::from_millis(1), later);
        assert!(histogram.quantile(0.95, 20, later).is_some());
        // ...two periods later they are gone.
        let much_later = now + Duration::from_secs(25);
        assert_eq!(histogram.quantile(0.95, 20, much_later), None);
    }
}
