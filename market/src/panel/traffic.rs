//! Each instance's share of the ratings calls of the last few seconds, for
//! the live panel: watch traffic drain from a slow instance and come back.
//!
//! Worked out from the library's running counts (successes + failures per
//! instance) sampled whenever the panel's status is built, at most four
//! times a second; nothing is added to the request path.

use beacon::ServiceSnapshot;
use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

/// How far back the share looks.
pub const SPAN: Duration = Duration::from_secs(10);
/// Fewest time between two samples.
const EVERY: Duration = Duration::from_millis(250);

/// Calls per instance address, as counted at one moment: by address, not
/// id, since two sites may each have a `ratings-1`.
type Counts = HashMap<String, u64>;

/// Recent samples of the per-instance call counts.
#[derive(Debug, Default)]
pub struct TrafficShares {
    samples: Mutex<VecDeque<(Instant, Counts)>>,
}

impl TrafficShares {
    /// Takes in `snapshot` (now) and answers each instance's share (0..=1),
    /// by address,
    /// of the calls since the oldest sample within [`SPAN`]; empty until
    /// there are calls to share.
    pub fn observe(&self, snapshot: &ServiceSnapshot) -> HashMap<String, f64> {
        let now = Instant::now();
        let counts: Counts = snapshot
            .instances
            .iter()
            .map(|i| (i.address.to_string(), i.successes + i.failures))
            .collect();
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        while samples
            .get(1)
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > SPAN)
        {
            samples.pop_front();
        }
        let shares = match samples.front() {
            Some((_, then)) => shares(then, &counts),
            None => HashMap::new(),
        };
        if samples
            .back()
            .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= EVERY)
        {
            samples.push_back((now, counts));
        }
        shares
    }
}

/// Each instance's part of the calls made between `then` and `now`.
fn shares(then: &Counts, now: &Counts) -> HashMap<String, f64> {
    let deltas: Vec<(&String, u64)> = now
        .iter()
        .map(|(id, calls)| (id, calls.saturating_sub(then.get(id).copied().unwrap_or(0))))
        .collect();
    let total: u64 = deltas.iter().map(|(_, d)| d).sum();
    if total == 0 {
        return HashMap::new();
    }
    deltas
        .into_iter()
        // Counts stay far below 2^52: the division is exact enough.
        .map(|(id, d)| (id.clone(), d as f64 / total as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> Counts {
        pairs.iter().map(|(id, n)| ((*id).to_owned(), *n)).collect()
    }

    #[test]
    fn shares_are_of_the_calls_in_between() {
        let then = counts(&[("ratings-1", 100), ("ratings-2", 100)]);
        let now = counts(&[("ratings-1", 190), ("ratings-2", 110), ("ratings-3", 0)]);
        let shares = shares(&then, &now);
        assert_eq!(shares["ratings-1"], 0.9);
        assert_eq!(shares["ratings-2"], 0.1);
        assert_eq!(shares["ratings-3"], 0.0);
        assert!(super::shares(&now, &now).is_empty(), "no calls, no shares");
    }
}
