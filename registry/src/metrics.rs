//! Prometheus metrics, exposed on `GET /_metrics`.

use beacon_kit::metrics::RequestMetrics;
use beacon_wire::ServiceName;
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use std::sync::Arc;

/// Labels of the per-service gauges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ServiceLabels {
    /// The service name.
    pub service: String,
}

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
    /// Shared-lease keepalives accepted.
    pub keepalives: Counter,
    /// Changes reads answered with a snapshot (a first sync, or a watcher
    /// behind the kept changes).
    pub change_snapshots: Counter,
    /// Changes reads answered with changes only.
    pub change_deltas: Counter,
    /// List reads answered with an answer already made for their index.
    pub answers_reused: Counter,
    /// Writes refused for their token (none, unknown, or not allowed the
    /// service); each is also an `audit` log line.
    pub writes_refused: Counter,
    instances: Family<ServiceLabels, Gauge>,
    parked_watchers: Gauge,
    /// Request latency by route, fed by `beacon_kit::metrics::record_latency`.
    pub requests: Arc<RequestMetrics>,
}

impl Metrics {
    /// Fresh metrics, registered under the `beacon_registry_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("beacon_registry");
        let registrations = Counter::default();
        let heartbeats = Counter::default();
        let deregistrations = Counter::default();
        let expirations = Counter::default();
        let keepalives = Counter::default();
        let change_snapshots = Counter::default();
        let change_deltas = Counter::default();
        let answers_reused = Counter::default();
        let writes_refused = Counter::default();
        let instances = Family::<ServiceLabels, Gauge>::default();
        let parked_watchers = Gauge::default();
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
        registry.register(
            "keepalives",
            "Shared-lease keepalives accepted (each renews every instance on the lease)",
            keepalives.clone(),
        );
        registry.register(
            "change_snapshots",
            "Changes reads answered with the whole list (first sync, or too far behind)",
            change_snapshots.clone(),
        );
        registry.register(
            "change_deltas",
            "Changes reads answered with the changes only",
            change_deltas.clone(),
        );
        registry.register(
            "answers_reused",
            "List reads answered with the JSON already made for their index",
            answers_reused.clone(),
        );
        registry.register(
            "writes_refused",
            "Writes refused for their token (each also an audit log line)",
            writes_refused.clone(),
        );
        registry.register("instances", "Live instances per service", instances.clone());
        registry.register(
            "parked_watchers",
            "Blocking queries waiting for a change",
            parked_watchers.clone(),
        );
        let requests = Arc::new(RequestMetrics::register(&mut registry));
        Self {
            registry,
            registrations,
            heartbeats,
            deregistrations,
            expirations,
            keepalives,
            change_snapshots,
            change_deltas,
            answers_reused,
            writes_refused,
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
