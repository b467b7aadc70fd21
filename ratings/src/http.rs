//! The ratings API.

use crate::{catalog, faults::Faults, wire::Rating};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    middleware,
    routing::get,
    Json, Router,
};
use beacon::wire::InstanceId;
use beacon_kit::{
    error::JsonError,
    metrics::{record_latency, RequestMetrics},
};
use prometheus_client::{encoding::text::encode, metrics::counter::Counter, registry::Registry};
use std::sync::Arc;

/// What every handler can reach.
#[derive(Debug)]
pub struct Ratings {
    /// This instance's id, reported in every answer so callers can see who served them.
    pub instance: InstanceId,
    /// Injected faults.
    pub faults: Faults,
    registry: Registry,
    requests: Arc<RequestMetrics>,
    injected_failures: Counter,
}

impl Ratings {
    /// State for instance `instance` with `faults`.
    pub fn new(instance: InstanceId, faults: Faults) -> Self {
        let mut registry = Registry::with_prefix("beacon_ratings");
        let requests = Arc::new(RequestMetrics::register(&mut registry));
        let injected_failures = Counter::default();
        registry.register(
            "injected_failures",
            "Rating requests failed on purpose (--fail-percent)",
            injected_failures.clone(),
        );
        Self {
            instance,
            faults,
            registry,
            requests,
            injected_failures,
        }
    }
}

/// The whole API.
pub fn router(state: Arc<Ratings>) -> Router {
    let requests = Arc::clone(&state.requests);
    Router::new()
        .route("/ratings/{thing}", get(rating))
        .route("/_health", get(health))
        .route("/_metrics", get(metrics))
        .fallback(|| async { JsonError::not_found() })
        .with_state(state)
        .layer(middleware::from_fn_with_state(requests, record_latency))
}

/// `GET /ratings/{thing}`: the rating, 404 `unknown_thing`, or an injected 500.
async fn rating(
    State(state): State<Arc<Ratings>>,
    Path(thing): Path<String>,
) -> Result<Json<Rating>, JsonError> {
    let fail = state.faults.apply().await;
    if fail {
        state.injected_failures.inc();
        return Err(JsonError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected_failure",
            format!("{} failed on purpose (--fail-percent)", state.instance),
        ));
    }
    let stars = catalog::stars(&thing).ok_or_else(|| {
        let known: Vec<&str> = catalog::things().collect();
        JsonError::new(
            StatusCode::NOT_FOUND,
            "unknown_thing",
            format!(
                "no rating for {thing:?}; rated things: {}",
                known.join(", ")
            ),
        )
    })?;
    Ok(Json(Rating {
        thing,
        stars,
        instance: state.instance.clone(),
    }))
}

async fn health(State(state): State<Arc<Ratings>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok", "instance": state.instance}))
}

async fn metrics(State(state): State<Arc<Ratings>>) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &state.registry);
    out
}
