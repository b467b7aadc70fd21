//! The registry's HTTP API: routes, middleware, and shared state.
//!
//! * [`instances`]: writes (register, heartbeat, deregister);
//! * [`leases`]: shared leases (grant, keepalive, end);
//! * [`services`]: reads and blocking queries;
//! * [`changes_stream`]: the changes feed as one long answer;
//! * [`ops`]: health and metrics;
//! * [`openapi`]: the API's description, `GET /openapi.json`;
//! * [`auth`], [`extract`], [`error`]: the pieces every route shares.

pub mod auth;
pub mod changes_stream;
pub mod error;
pub mod extract;
pub mod instances;
pub mod leases;
pub mod openapi;
pub mod ops;
pub mod services;

use crate::{
    metrics::Metrics,
    store::{self, Store},
};
use auth::{Target, WriteAuth, WriteGuard, Writer};
use axum::{
    extract::DefaultBodyLimit,
    middleware,
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
    Router,
};
use beacon_kit::metrics::record_latency;
use beacon_wire::{ErrorCode, MAX_BODY_BYTES};
use error::AppError;
use std::{any::Any, sync::Arc};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};

/// What every handler can reach.
#[derive(Debug)]
pub struct AppState<S> {
    /// Where registrations live.
    pub store: Arc<S>,
    /// Counters and histograms for `/_metrics`.
    pub metrics: Arc<Metrics>,
    /// Fires on shutdown so that parked blocking queries answer at once
    /// instead of holding graceful shutdown up for up to a minute.
    pub shutdown: CancellationToken,
    /// The site this registry serves (`--dc`), if named.
    pub dc: Option<Arc<str>>,
}

// Not derived: that would require `S: Clone`, and the store is shared, not cloned.
impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            metrics: Arc::clone(&self.metrics),
            shutdown: self.shutdown.clone(),
            dc: self.dc.clone(),
        }
    }
}

impl<S: Store> AppState<S> {
    /// [`Writer::authorize`] against this registry's catalog and metrics.
    pub fn authorize(
        &self,
        writer: Option<&Writer>,
        target: Target<'_>,
        what: &str,
    ) -> Result<Option<store::Owner>, AppError> {
        Writer::authorize(writer, target, self.store.catalog(), &self.metrics, what)
    }
}

/// The whole API over `store`, writes authorized by `auth`.
pub fn router<S: Store>(state: AppState<S>, auth: WriteAuth) -> Router {
    let request_metrics = Arc::clone(&state.metrics.requests);
    let guard = WriteGuard {
        auth,
        metrics: Arc::clone(&state.metrics),
    };
    Router::new()
        .route("/v1/services", get(services::list::<S>))
        .route("/v1/services/{service}", get(services::resolve::<S>))
        .route(
            "/v1/services/{service}/changes",
            get(services::changes::<S>),
        )
        .route(
            "/v1/services/{service}/instances/{id}",
            put(instances::register::<S>).delete(instances::deregister::<S>),
        )
        .route(
            "/v1/services/{service}/instances/{id}/heartbeat",
            put(instances::heartbeat::<S>),
        )
        .route("/v1/leases", post(leases::grant::<S>))
        .route("/v1/leases/{lease}", delete(leases::revoke::<S>))
        .route("/v1/leases/{lease}/keepalive", put(leases::keep_alive::<S>))
        .route("/_health", get(ops::health::<S>))
        .route("/_metrics", get(ops::metrics::<S>))
        .route("/openapi.json", get(openapi::document))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(TraceLayer::new_for_http())
                .layer(middleware::from_fn_with_state(
                    request_metrics,
                    record_latency,
                ))
                .layer(middleware::from_fn_with_state(guard, auth::require_token))
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
}

async fn not_found() -> AppError {
    AppError::new(
        ErrorCode::NotFound,
        "no such route; see the API in the README",
    )
}

async fn method_not_allowed() -> AppError {
    AppError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}

/// A panic is a bug, but the client still gets JSON and the server keeps going.
fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    AppError::new(ErrorCode::Internal, "internal error").into_response()
}
