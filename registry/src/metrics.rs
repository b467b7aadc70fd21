//! Prometheus metrics, exposed on `GET /_metrics`.

use beacon::wire::ServiceName;
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};
use std::time::Duration;

/// Labels of the per-service gauges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ServiceLabels {
    /// The service name.
    pub service: String,
}

/// Labels of the request-latency histogram. `route` is the matched route
/// template (not the raw path), so label cardinality stays bounded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// Route template, e.g. `/v1/services/{service}`.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

type LatencyFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Every metric the registry keeps. Cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Successful registrations (new or replacing).
    pub registrations: Counter,
    /// Successful heartbeats.
    pub heartbeats: Counter,
    /// Explicit deregistrations.
    pub deregistrations: Counter,
    /// Leases that ran out.
    pub expirations: Counter,
    instances: Family<ServiceLabels, Gauge>,
    parked_watchers: Gauge,
    requests: LatencyFamily,
}

impl Metrics {
    /// Fresh metrics, registered under the `beacon_registry_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("beacon_registry");
        let registrations = Counter::default();
        let heartbeats = Counter::default();
        let deregistrations = Counter::default();
        let expirations = Counter::default();
        let instances = Family::<ServiceLabels, Gauge>::default();
        let parked_watchers = Gauge::default();
        // 0.25 ms .. ~65 s: from a cached read to the longest blocking query.
        let requests: LatencyFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.00025, 2.0, 19)));
        registry.register(
            "registrations",
            "Registrations accepted (new or replacing)",
            registrations.clone(),
        );
        registry.register("heartbeats", "Lease renewals accepted", heartbeats.clone());
        registry.register(
            "deregistrations",
            "Instances removed on request",
            deregistrations.clone(),
        );
        registry.register(
            "expirations",
            "Instances removed because their lease ran out",
            expirations.clone(),
        );
        registry.register("instances", "Live instances per service", instances.clone());
        registry.register(
            "parked_watchers",
            "Blocking queries waiting for a change",
            parked_watchers.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            requests.clone(),
        );
        Self {
            registry,
            registrations,
            heartbeats,
            deregistrations,
            expirations,
            instances,
            parked_watchers,
            requests,
        }
    }

    /// Sets the live-instance gauge of `service`.
    pub fn set_instances(&self, service: &ServiceName, count: usize) {
        self.instances
            .get_or_create(&service_labels(service))
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Records one answered HTTP request.
    pub fn observe_request(&self, labels: RequestLabels, elapsed: Duration) {
        self.requests
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn service_labels(service: &ServiceName) -> ServiceLabels {
    ServiceLabels {
        service: service.to_string(),
    }
}

/// Counts one parked blocking query for as long as it lives, including when
/// the request is dropped mid-wait (client went away).
#[derive(Debug)]
pub struct ParkedWatcher<'a> {
    gauge: &'a Gauge,
}

impl<'a> ParkedWatcher<'a> {
    /// Counts a watcher in.
    pub fn new(metrics: &'a Metrics) -> Self {
        metrics.parked_watchers.inc();
        Self {
            gauge: &metrics.parked_watchers,
        }
    }
}

impl Drop for ParkedWatcher<'_> {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
