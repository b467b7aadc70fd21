//! The ratings API.

use crate::{
    catalog,
    faults::{FaultSwitch, Faults},
    wire::{FaultSettings, Rating},
};
use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::{HeaderMap, StatusCode},
    middleware,
    routing::get,
    Json, Router,
};
use beacon::deadline::{self, DeadlineLayer};
use beacon::overload::OverloadLayer;
use beacon::wire::InstanceId;
use beacon_kit::{
    auth::check_bearer,
    error::JsonError,
    metrics::{record_latency, RequestMetrics},
};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use std::sync::{atomic::AtomicU64, Arc};
use tower::ServiceBuilder;

/// What every handler can reach.
#[derive(Debug)]
pub struct Ratings {
    /// This instance's id, reported in every answer so callers can see who served them.
    pub instance: InstanceId,
    /// Injected faults, changeable at run time.
    pub faults: FaultSwitch,
    /// Who may change the faults.
    faults_access: FaultsAccess,
    registry: Registry,
    requests: Arc<RequestMetrics>,
    /// Refuses requests whose caller's budget is spent, and gives the rest
    /// their deadline.
    deadlines: DeadlineLayer,
    /// Sheds rating requests past `--max-in-flight` (503 `overloaded`) and
    /// reports load on every answer.
    overload: OverloadLayer,
    injected_failures: Counter,
    /// The faults in force, as metrics: a dashboard that shows an instance
    /// slow or failing can tell an injected fault from a real one.
    fault_delay: Gauge<f64, AtomicU64>,
    fault_fail_ratio: Gauge<f64, AtomicU64>,
}

/// Who may change an instance's faults (`PUT /_faults`): a fault switch
/// left open lets anyone who reaches the instance make it fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultsAccess {
    /// Callers bearing this token (the registry token the instance was
    /// started with).
    Token(String),
    /// Anyone (`--allow-faults`, for demos and tests).
    Anyone,
    /// Nobody: 403 `faults_disabled` (no token, no `--allow-faults`).
    Nobody,
}

impl FaultsAccess {
    /// From the instance's token and `--allow-faults`: the token wins.
    pub fn new(token: Option<String>, allow_faults: bool) -> Self {
        match (token, allow_faults) {
            (Some(token), _) => Self::Token(token),
            (None, true) => Self::Anyone,
            (None, false) => Self::Nobody,
        }
    }
}

impl Ratings {
    /// State for instance `instance`, starting with `faults`, changeable
    /// as `faults_access` says, serving at most `max_in_flight` rating
    /// requests at once (the next is shed).
    pub fn new(
        instance: InstanceId,
        faults: Faults,
        faults_access: FaultsAccess,
        max_in_flight: u32,
    ) -> Self {
        let mut registry = Registry::with_prefix("beacon_ratings");
        let requests = Arc::new(RequestMetrics::register(&mut registry));
        let deadlines = DeadlineLayer::new();
        let overload = OverloadLayer::new(max_in_flight);
        overload.register_metrics(&mut registry);
        let injected_failures = Counter::default();
        registry.register(
            "deadline_refused",
            "Requests refused unserved: the caller's budget (beacon-deadline-ms) was spent when they arrived",
            deadlines.refused(),
        );
        registry.register(
            "injected_failures",
            "Rating requests failed on purpose (--fail-percent)",
            injected_failures.clone(),
        );
        let fault_delay = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "fault_delay_seconds",
            "Delay injected before every rating answer (--delay-ms, PUT /_faults)",
            fault_delay.clone(),
        );
        let fault_fail_ratio = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "fault_fail_ratio",
            "Share of rating requests failed on purpose (--fail-percent, PUT /_faults)",
            fault_fail_ratio.clone(),
        );
        let ratings = Self {
            instance,
            faults: FaultSwitch::new(faults),
            faults_access,
            registry,
            requests,
            deadlines,
            overload,
            injected_failures,
            fault_delay,
            fault_fail_ratio,
        };
        ratings.put_in_force(faults);
        ratings
    }

    /// Puts `faults` in force, and in the metrics.
    fn put_in_force(&self, faults: Faults) {
        self.faults.set(faults);
        // Seats are what it serves at once: its load reports say how full
        // they are.
        self.overload
            .set_capacity((faults.capacity > 0).then_some(faults.capacity));
        self.fault_delay.set(faults.delay.as_secs_f64());
        self.fault_fail_ratio
            .set(f64::from(faults.fail_percent) / 100.0);
    }
}

/// The whole API.
pub fn router(state: Arc<Ratings>) -> Router {
    let requests = Arc::clone(&state.requests);
    let deadlines = state.deadlines.clone();
    let ratings = Router::new()
        .route("/ratings/{thing}", get(rating))
        .route_layer(state.overload.clone());
    Router::new()
        .merge(ratings)
        .route("/_health", get(health))
        .route("/_faults", get(faults).put(set_faults))
        .route("/_metrics", get(metrics))
        .fallback(|| async { JsonError::not_found() })
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(requests, record_latency))
                .layer(deadlines),
        )
}

/// `GET /ratings/{thing}`: the rating, 404 `unknown_thing`, or an injected 500.
async fn rating(
    State(state): State<Arc<Ratings>>,
    Path(thing): Path<String>,
) -> Result<Json<Rating>, JsonError> {
    let budget_ms =
        deadline::remaining().map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
    let fail = state.faults.apply().await;
    if fail {
        state.injected_failures.inc();
        return Err(JsonError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected_failure",
            format!("{} failed on purpose (fail_percent)", state.instance),
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
        budget_ms,
    }))
}

/// `GET /_faults`: the faults in force.
async fn faults(State(state): State<Arc<Ratings>>) -> Json<FaultSettings> {
    Json(state.faults.get().into())
}

/// `PUT /_faults`: replaces the faults in force (400 `invalid_body` or
/// `invalid_faults` for bad input; 401 `unauthorized` without the token).
async fn set_faults(
    State(state): State<Arc<Ratings>>,
    headers: HeaderMap,
    body: Result<Json<FaultSettings>, JsonRejection>,
) -> Result<Json<FaultSettings>, JsonError> {
    match &state.faults_access {
        FaultsAccess::Token(token) => check_bearer(&headers, token)
            .map_err(|e| JsonError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()))?,
        FaultsAccess::Anyone => {}
        FaultsAccess::Nobody => {
            return Err(JsonError::new(
                StatusCode::FORBIDDEN,
                "faults_disabled",
                "this instance's faults can't be changed: start it with --token or --allow-faults",
            ))
        }
    }
    let Json(settings) = body.map_err(|e| {
        JsonError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!(
                "expected {{\"delay_ms\": int, \"fail_percent\": 0..=100, \"capacity\": int?, \"warmup_ms\": int?}}: {}",
                e.body_text()
            ),
        )
    })?;
    let faults = Faults::try_from(settings)
        .map_err(|e| JsonError::new(StatusCode::BAD_REQUEST, "invalid_faults", e))?;
    state.put_in_force(faults);
    tracing::info!(
        "faults now: delay {} ms, failing {}% of rating requests, capacity {}, warm-up {} ms",
        settings.delay_ms,
        settings.fail_percent,
        settings.capacity,
        settings.warmup_ms
    );
    Ok(Json(settings))
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
