//! Request latency by route, for `/_metrics`.

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        family::Family,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};
use std::sync::Arc;
use tokio::time::Instant;

/// Labels of the latency histogram. `route` is the matched route template
/// (not the raw path), so label cardinality stays bounded.
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

/// A latency histogram per (method, route, status).
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    latency: LatencyFamily,
}

impl RequestMetrics {
    /// Creates the histogram family and registers it in `registry` as
    /// `http_request_duration_seconds`.
    pub fn register(registry: &mut Registry) -> Self {
        // 0.25 ms .. ~65 s: from a cached read to the longest blocking query.
        let latency: LatencyFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.00025, 2.0, 19)));
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        Self { latency }
    }
}

/// Middleware (`axum::middleware::from_fn_with_state`) that observes every
/// request's latency, labelled by route template.
pub async fn record_latency(
    State(metrics): State<Arc<RequestMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}
