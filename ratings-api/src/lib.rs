//! What the ratings API answers, defined once for the service
//! (`beacon-ratings`) and its callers (the market, the benchmarks), so that
//! a caller links the contract, not the server.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

use beacon_wire::InstanceId;
use serde::{Deserialize, Serialize};

/// Body of `GET /ratings/{thing}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    /// The thing rated, e.g. `camera`.
    pub thing: String,
    /// Stars out of five.
    pub stars: f64,
    /// The instance that answered, so callers can see who served them.
    pub instance: InstanceId,
    /// What was left of the caller's budget (`beacon-deadline-ms`) when the
    /// answer began, in whole milliseconds; absent when it sent none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_ms: Option<u64>,
}

/// Body of `GET /_faults`, and of `PUT /_faults` (which replaces them
/// all; `capacity` and `warmup_ms` left out are 0, the first two are
/// required). `..FaultSettings::default()` for no fault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// Delay before every rating answer, in milliseconds (at most 600000):
    /// the answer's work.
    pub delay_ms: u64,
    /// Percentage of rating requests answered with a 500 (0..=100).
    pub fail_percent: u8,
    /// Rating requests served at once; more wait in a queue, in order
    /// (0: no limit). A full instance, not a broken one.
    #[serde(default)]
    pub capacity: u32,
    /// For this long after the instance starts, or after this is set,
    /// answers are 5× slower: their work is 5 × `delay_ms` (at least 5 ms).
    /// A cold instance (0: none).
    #[serde(default)]
    pub warmup_ms: u64,
}

/// The rating requests an instance has taken, every answer counted, read
/// from the text of its `GET /_metrics`: the request histogram's `_count`
/// for the `/ratings/{thing}` route, summed over statuses. For benchmarks
/// and tests that judge a balancer by what the instances saw.
pub fn rating_requests(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("beacon_ratings_http_request_duration_seconds_count{")
                && l.contains(r#"route="/ratings/{thing}""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rating_requests_are_counted_from_the_metrics_text() {
        let text = "# HELP x\nbeacon_ratings_http_request_duration_seconds_count{method=\"GET\",route=\"/ratings/{thing}\",status=\"200\"} 70\nbeacon_ratings_http_request_duration_seconds_count{method=\"GET\",route=\"/ratings/{thing}\",status=\"500\"} 30\nbeacon_ratings_http_request_duration_seconds_count{method=\"GET\",route=\"/_health\",status=\"200\"} 9\n";
        assert_eq!(rating_requests(text), 100);
    }
}
