//! The client's Prometheus metrics, in a registry the caller passes in.
//!
//! Everything is read at scrape time from what the client counts anyway
//! (each endpoint's record, the hedge's latencies and counts, the retry
//! policy's counts), so exporting metrics adds nothing to a call. Names are
//! relative to the registry's prefix:
//!
//! * `client_attempts_total{service, instance, outcome="success"|"failure"}`
//! * `client_breaker{service, instance, state="closed"|"open"|"half_open"}`:
//!   1 for the state it is in, 0 for the others
//! * `client_latency_estimate_seconds{service, instance}`: the balancer's
//!   peak-EWMA estimate (absent until the instance has answered)
//! * `client_in_flight{service, instance}`
//! * `client_attempt_duration_seconds{service}`: first attempts that
//!   answered (while hedging is on: it is the hedge's histogram)
//! * `client_hedges_total{service, result="sent"|"won"}`
//! * `client_retries_total{service}`
//! * `client_budget_exhausted_total{service, budget="retry"|"hedge"}`

use crate::client::{ServiceClient, Transport};
use crate::BreakerState;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};
use std::fmt::{Debug, Error};

/// Bucket bounds of the attempt-duration histogram, in seconds (the last
/// is Prometheus' `+Inf`).
const BOUNDS: [f64; 13] = [
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    f64::MAX,
];

/// Registers `client`'s metrics in `registry` (see the module's list).
pub fn register<T: Transport>(registry: &mut Registry, client: &ServiceClient<T>) {
    registry.register_collector(Box::new(ClientCollector {
        client: client.clone(),
    }));
}

struct ClientCollector<T> {
    client: ServiceClient<T>,
}

/// By hand: a transport needn't be `Debug`.
impl<T: Transport> Debug for ClientCollector<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCollector")
            .field("service", self.client.view().service())
            .finish()
    }
}

impl<T: Transport> Collector for ClientCollector<T> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        let snapshot = self.client.snapshot();
        let service = snapshot.service.as_str();
        let instances = &snapshot.instances;

        let mut family = encoder.encode_descriptor(
            "client_attempts",
            "Attempts per instance, by outcome (a failure: timeout, connect error, 5xx)",
            None,
            MetricType::Counter,
        )?;
        for i in instances {
            for (outcome, n) in [("success", i.successes), ("failure", i.failures)] {
                let labels = [
                    ("service", service),
                    ("instance", i.id.as_str()),
                    ("outcome", outcome),
                ];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "client_breaker",
            "Breaker state per instance: 1 for the state it is in",
            None,
            MetricType::Gauge,
        )?;
        for i in instances {
            for state in [
                BreakerState::Closed,
                BreakerState::Open,
                BreakerState::HalfOpen,
            ] {
                let labels = [
                    ("service", service),
                    ("instance", i.id.as_str()),
                    ("state", state.as_str()),
                ];
                ConstGauge::new(i64::from(i.breaker == state))
                    .encode(family.encode_family(&labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "client_latency_estimate_seconds",
            "The balancer's latency estimate per instance (peak-sensitive moving average)",
            None,
            MetricType::Gauge,
        )?;
        for i in instances {
            if let Some(ms) = i.latency_ms {
                let labels = [("service", service), ("instance", i.id.as_str())];
                ConstGauge::new(ms / 1000.0).encode(family.encode_family(&labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "client_in_flight",
            "Attempts in flight per instance",
            None,
            MetricType::Gauge,
        )?;
        for i in instances {
            let labels = [("service", service), ("instance", i.id.as_str())];
            ConstGauge::new(i64::from(i.in_flight)).encode(family.encode_family(&labels)?)?;
        }

        if let Some(latencies) = self.client.latencies(&BOUNDS) {
            let mut family = encoder.encode_descriptor(
                "client_attempt_duration_seconds",
                "First attempts that answered, by how long they took",
                None,
                MetricType::Histogram,
            )?;
            // The encoder wants each bucket's own count (it adds them up).
            let mut below = 0;
            let buckets: Vec<(f64, u64)> = latencies
                .buckets
                .iter()
                .map(|&(bound, within)| {
                    let own = within.saturating_sub(below);
                    below = within;
                    (bound, own)
                })
                .collect();
            let labels = [("service", service)];
            family
                .encode_family(&labels)?
                .encode_histogram::<[(&str, &str); 0]>(
                    latencies.sum,
                    latencies.count,
                    &buckets,
                    None,
                )?;
        }

        let hedges = self.client.hedges();
        let mut family = encoder.encode_descriptor(
            "client_hedges",
            "Second attempts sent because the first was late, and those that answered first",
            None,
            MetricType::Counter,
        )?;
        for (result, n) in [("sent", hedges.sent), ("won", hedges.won)] {
            let labels = [("service", service), ("result", result)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }

        let retries = self.client.retries();
        let mut family = encoder.encode_descriptor(
            "client_retries",
            "Attempts sent again on another instance after a failure",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(retries.retries)
            .encode(family.encode_family(&[("service", service)])?)?;

        let mut family = encoder.encode_descriptor(
            "client_budget_exhausted",
            "Retries and hedges that would have gone but for their budget",
            None,
            MetricType::Counter,
        )?;
        for (budget, n) in [
            ("retry", retries.budget_exhausted),
            ("hedge", hedges.budget_exhausted),
        ] {
            let labels = [("service", service), ("budget", budget)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
