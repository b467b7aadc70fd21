//! Summaries and time buckets of load samples.

use crate::load::Sample;
use serde::Serialize;
use std::{collections::BTreeMap, time::Duration};

/// The numbers a run is judged by.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Requests sent.
    pub requests: usize,
    /// Requests without the right answer in time.
    pub errors: usize,
    /// Of which: a 2xx with a body that was not the asked-for rating.
    pub wrong_answers: usize,
    /// Whether the latency percentiles include failed requests (at the
    /// time they failed), as in the fault runs, or only answered ones.
    pub failed_included: bool,
    /// Answered requests per second of the run.
    pub throughput: f64,
    /// Latency percentiles of answered requests, in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest answered request.
    pub max_ms: f64,
}

impl Summary {
    /// Summarizes `samples` of a run that lasted `duration`; latencies of
    /// answered requests only.
    pub fn of(samples: &[Sample], duration: Duration) -> Self {
        Self::summarize(samples, duration, false)
    }

    /// Like [`of`](Self::of), with failed requests in the latencies too
    /// (at the time they failed): what a caller lived through in a fault.
    pub fn with_failures(samples: &[Sample], duration: Duration) -> Self {
        Self::summarize(samples, duration, true)
    }

    fn summarize(samples: &[Sample], duration: Duration, failed_included: bool) -> Self {
        let mut latencies: Vec<f64> = samples
            .iter()
            .filter(|s| s.ok || failed_included)
            .map(|s| ms(s.latency))
            .collect();
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            latencies[((latencies.len() - 1) as f64 * q).round() as usize]
        };
        Self {
            requests: samples.len(),
            errors: samples.iter().filter(|s| !s.ok).count(),
            wrong_answers: samples.iter().filter(|s| s.wrong_answer).count(),
            failed_included,
            throughput: samples.iter().filter(|s| s.ok).count() as f64 / duration.as_secs_f64(),
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            max_ms: latencies.last().copied().unwrap_or(0.0),
        }
    }
}

/// One time slice of a run, for the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// Start of the slice, seconds from the start of the run.
    pub at_s: f64,
    /// Requests started in it.
    pub requests: usize,
    /// Of which failed.
    pub errors: usize,
    /// Slowest request started in it, in milliseconds (errors count at their timeout).
    pub max_ms: f64,
    /// 99th percentile of requests started in it.
    pub p99_ms: f64,
    /// Answers per instance, of requests started in it.
    pub served: BTreeMap<String, usize>,
}

/// Slices `samples` into buckets of `width`.
pub fn buckets(samples: &[Sample], width: Duration, duration: Duration) -> Vec<Bucket> {
    let count = (duration.as_secs_f64() / width.as_secs_f64()).ceil() as usize;
    (0..count)
        .map(|i| {
            let (from, to) = (width * i as u32, width * (i as u32 + 1));
            let mut inside: Vec<f64> = Vec::new();
            let mut errors = 0;
            let mut served = BTreeMap::new();
            for s in samples.iter().filter(|s| s.at >= from && s.at < to) {
                inside.push(ms(s.latency));
                errors += usize::from(!s.ok);
                if let Some(instance) = &s.instance {
                    *served.entry(instance.clone()).or_insert(0) += 1;
                }
            }
            inside.sort_by(f64::total_cmp);
            let p99 = inside
                .get(((inside.len().max(1) - 1) as f64 * 0.99).round() as usize)
                .copied()
                .unwrap_or(0.0);
            Bucket {
                at_s: from.as_secs_f64(),
                requests: inside.len(),
                errors,
                max_ms: inside.last().copied().unwrap_or(0.0),
                p99_ms: p99,
                served,
            }
        })
        .collect()
}

/// Requests slower than `limit` (errors included: they waited the timeout).
pub fn slower_than(samples: &[Sample], limit: Duration) -> usize {
    samples
        .iter()
        .filter(|s| !s.ok || s.latency > limit)
        .count()
}

/// Time from `since` until `instance` first answered again, if it did.
pub fn back_after(samples: &[Sample], instance: &str, since: Duration) -> Option<Duration> {
    samples
        .iter()
        .filter(|s| s.at >= since && s.ok && s.instance.as_deref() == Some(instance))
        .map(|s| s.at + s.latency - since)
        .min()
}

/// Median and range of one figure over repeated runs: a headline is a
/// median, never one lucky sample, and the range shows how much it moved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// The median (of an even count: the mean of the middle two).
    pub median: f64,
    /// The lowest value.
    pub min: f64,
    /// The highest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut values: Vec<f64> = values.into_iter().collect();
        values.sort_by(f64::total_cmp);
        let (first, last) = (values.first()?, values.last()?);
        let middle = values.len() / 2;
        let median = if values.len() % 2 == 1 {
            values[middle]
        } else {
            (values[middle - 1] + values[middle]) / 2.0
        };
        Some(Self {
            median,
            min: *first,
            max: *last,
        })
    }

    /// `median (min–max)` with `decimals` digits, or just the value when
    /// every run gave the same.
    pub fn show(&self, decimals: usize) -> String {
        if self.min == self.max {
            format!("{:.decimals$}", self.median)
        } else {
            format!(
                "{:.decimals$} ({:.decimals$}–{:.decimals$})",
                self.median, self.min, self.max
            )
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, latency_ms: u64, ok: bool, instance: &str) -> Sample {
        Sample {
            at: Duration::from_millis(at_ms),
            latency: Duration::from_millis(latency_ms),
            ok,
            wrong_answer: false,
            instance: Some(instance.to_owned()),
        }
    }

    #[test]
    fn summaries_count_errors_and_rank_latencies() {
        let samples: Vec<Sample> = (1..=100).map(|n| sample(n * 10, n, n != 50, "a")).collect();
        let summary = Summary::of(&samples, Duration::from_secs(1));
        assert_eq!((summary.requests, summary.errors), (100, 1));
        assert_eq!(summary.throughput, 99.0);
        assert_eq!(summary.max_ms, 100.0);
        assert!((summary.p50_ms - 51.0).abs() <= 1.0, "{}", summary.p50_ms);
    }

    #[test]
    fn spreads_take_the_median_and_the_range() {
        let spread = Spread::of([3.0, 1.0, 2.0]).expect("values");
        assert_eq!((spread.median, spread.min, spread.max), (2.0, 1.0, 3.0));
        assert_eq!(spread.show(0), "2 (1–3)");
        assert_eq!(Spread::of([1.0, 4.0]).map(|s| s.median), Some(2.5));
        assert_eq!(
            Spread::of([5.0; 3]).map(|s| s.show(1)).as_deref(),
            Some("5.0")
        );
        assert_eq!(Spread::of([]), None);
    }

    #[test]
    fn buckets_and_recovery_times() {
        let samples = vec![
            sample(0, 5, true, "a"),
            sample(150, 900, false, "b"),
            sample(450, 5, true, "b"),
        ];
        let slices = buckets(
            &samples,
            Duration::from_millis(100),
            Duration::from_millis(500),
        );
        assert_eq!(slices.len(), 5);
        assert_eq!((slices[1].requests, slices[1].errors), (1, 1));
        assert_eq!(slower_than(&samples, Duration::from_millis(10)), 1);
        assert_eq!(
            back_after(&samples, "b", Duration::from_millis(200)),
            Some(Duration::from_millis(255))
        );
        assert_eq!(back_after(&samples, "c", Duration::ZERO), None);
    }
}
