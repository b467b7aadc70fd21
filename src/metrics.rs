//! The client's Prometheus metrics, in a registry the caller passes in.
//!
//! Everything is read at scrape time from what the client counts anyway
//! (each endpoint's record, the first attempts' latencies, the hedge's
//! and the retry policy's counts), so exporting metrics adds nothing to a call. Names are
//! relative to the registry's prefix:
//!
//! * `client_attempts_total{service, instance, outcome="success"|"failure"}`
//! * `client_breaker{service, instance, state="closed"|"open"|"half_open"}`:
//!   1 for the state it is in, 0 for the others
//! * `client_latency_estimate_seconds{service, instance}`: the balancer's
//!   peak-EWMA estimate (absent until the instance has answered)
//! * `client_in_flight{service, instance}`
//! * `client_learned_limit{service, instance}`: the calls it can take at
//!   once, as learned from its answers (kept to by clients with adaptive
//!   limits)
//! * `client_reported_utilization{service, instance}`: what it last said
//!   of its own load (absent until it has said anything)
//! * `client_attempt_duration_seconds{service}`: first attempts answered
//!   whole (the latencies the hedge delay is read from)
//! * `client_hedges_total{service, result="sent"|"won"}`
//! * `client_retries_total{service}`
//! * `client_budget_exhausted_total{service, budget="retry"|"hedge"}`
//! * `client_retries_held_back_total{service}`: busy calls not retried
//!   because most calls met a busy instance

use crate::client::{CumulativeLatencies, ServiceClient, Transport};
use crate::{BreakerState, InstanceSnapshot};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
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

        let attempts = instances.iter().flat_map(|i| {
            [("success", i.successes), ("failure", i.failures)].map(|(outcome, n)| {
                (
                    push(at(service, i), ("outcome", outcome)),
                    ConstCounter::new(n),
                )
            })
        });
        family(
            &mut encoder,
            "client_attempts",
            "Attempts per instance, by outcome (a failure: timeout, connect error, 5xx)",
            MetricType::Counter,
            attempts,
        )?;
        let states = [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
        ];
        let breakers = instances.iter().flat_map(|i| {
            states.map(|state| {
                let on = i64::from(i.breaker == state);
                (
                    push(at(service, i), ("state", state.as_str())),
                    ConstGauge::new(on),
                )
            })
        });
        family(
            &mut encoder,
            "client_breaker",
            "Breaker state per instance: 1 for the state it is in",
            MetricType::Gauge,
            breakers,
        )?;
        let estimates = instances
            .iter()
            .filter_map(|i| Some((at(service, i), ConstGauge::new(i.latency_ms? / 1000.0))));
        family(
            &mut encoder,
            "client_latency_estimate_seconds",
            "The balancer's latency estimate per instance (peak-sensitive moving average)",
            MetricType::Gauge,
            estimates,
        )?;
        let in_flight = instances
            .iter()
            .map(|i| (at(service, i), ConstGauge::new(i64::from(i.in_flight))));
        family(
            &mut encoder,
            "client_in_flight",
            "Attempts in flight per instance",
            MetricType::Gauge,
            in_flight,
        )?;
        let limits = instances
            .iter()
            .map(|i| (at(service, i), ConstGauge::new(i64::from(i.learned_limit))));
        family(
            &mut encoder,
            "client_learned_limit",
            "Calls each instance can take at once, as learned from its answers",
            MetricType::Gauge,
            limits,
        )?;
        let reported = instances
            .iter()
            .filter_map(|i| Some((at(service, i), ConstGauge::new(i.reported_utilization?))));
        family(
            &mut encoder,
            "client_reported_utilization",
            "The utilization each instance last reported on its answers (1.0: full)",
            MetricType::Gauge,
            reported,
        )?;
        histogram(&mut encoder, service, &self.client.latencies(&BOUNDS))?;
        let hedges = self.client.hedges();
        let sent_won = counters_by(
            service,
            "result",
            [("sent", hedges.sent), ("won", hedges.won)],
        );
        family(
            &mut encoder,
            "client_hedges",
            "Second attempts sent because the first was late, and those that answered first",
            MetricType::Counter,
            sent_won,
        )?;
        let retries = self.client.retries();
        family(
            &mut encoder,
            "client_retries",
            "Attempts sent again on another instance after a failure",
            MetricType::Counter,
            [([("service", service)], ConstCounter::new(retries.retries))],
        )?;
        let refused = counters_by(
            service,
            "budget",
            [
                ("retry", retries.budget_exhausted),
                ("hedge", hedges.budget_exhausted),
            ],
        );
        family(
            &mut encoder,
            "client_budget_exhausted",
            "Retries and hedges that would have gone but for their budget",
            MetricType::Counter,
            refused,
        )?;
        family(
            &mut encoder,
            "client_retries_held_back",
            "Busy calls not retried: sheds were half the recent calls or more",
            MetricType::Counter,
            [([("service", service)], ConstCounter::new(retries.held_back))],
        )
    }
}

/// One metric family: a descriptor, then a metric per label set.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (L, M)>,
) -> Result<(), Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in rows {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The labels of instance `i` of `service`.
fn at<'a>(service: &'a str, i: &'a InstanceSnapshot) -> [(&'a str, &'a str); 2] {
    [("service", service), ("instance", i.id.as_str())]
}

/// Counters of `service`, one per `(value of key, count)`.
fn counters_by<'a, const N: usize>(
    service: &'a str,
    key: &'a str,
    counts: [(&'a str, u64); N],
) -> [([(&'a str, &'a str); 2], ConstCounter); N] {
    counts.map(|(value, n)| ([("service", service), (key, value)], ConstCounter::new(n)))
}

/// `labels` with one more.
fn push<'a>(labels: [(&'a str, &'a str); 2], more: (&'a str, &'a str)) -> [(&'a str, &'a str); 3] {
    [labels[0], labels[1], more]
}

/// The first-attempt duration histogram.
fn histogram(
    encoder: &mut DescriptorEncoder,
    service: &str,
    latencies: &CumulativeLatencies,
) -> Result<(), Error> {
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
    family
        .encode_family(&[("service", service)])?
        .encode_histogram::<[(&str, &str); 0]>(latencies.sum, latencies.count, &buckets, None)
}
