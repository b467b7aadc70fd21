//! Operations endpoints: `/_health` and `/_metrics`.

use super::{error::AppError, extract::QueryParams, AppState};
use crate::store::Store;
use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use beacon_wire::{ErrorBody, ErrorCode};
use serde::{Deserialize, Serialize};

/// `?deep=true` asks for a store check too.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HealthParams {
    /// `true`: check that the store takes writes too.
    #[param(value_type = Option<bool>)]
    deep: Option<String>,
}

/// Body of `/_health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when a deep check failed.
    #[schema(value_type = String)]
    status: &'static str,
    /// `memory` or `etcd`.
    #[schema(value_type = String)]
    store: &'static str,
    services: usize,
    instances: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The site (data center) it serves (`--dc`), when named.
    #[serde(skip_serializing_if = "Option::is_none")]
    dc: Option<String>,
}

/// `GET /_health[?deep=true]`: 200 when serving; with `deep`, 503 when the
/// store can't take writes.
#[utoipa::path(
    get,
    path = "/_health",
    tag = "operations",
    params(HealthParams),
    responses(
        (status = 200, description = "Serving", body = Health),
        (status = 400, description = "deep is neither true nor false", body = ErrorBody),
        (status = 503, description = "A deep check found the store unavailable", body = Health),
    )
)]
pub async fn health<S: Store>(
    State(app): State<AppState<S>>,
    QueryParams(params): QueryParams<HealthParams>,
) -> Result<Response, AppError> {
    let deep = match params.deep.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(AppError::new(
                ErrorCode::InvalidQuery,
                format!("deep {other:?} must be true or false"),
            ))
        }
    };
    let (services, instances) = app.store.catalog().counts();
    let error = if deep {
        app.store.check().await.err().map(|e| e.to_string())
    } else {
        None
    };
    let status = if error.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = Health {
        status: if error.is_some() { "unavailable" } else { "ok" },
        store: app.store.kind(),
        services,
        instances,
        error,
        dc: app.dc.as_deref().map(str::to_owned),
    };
    Ok((status, Json(body)).into_response())
}

/// `GET /_metrics`: Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/_metrics",
    tag = "operations",
    responses((status = 200, description = "OpenMetrics text",
        content_type = "application/openmetrics-text", body = String))
)]
pub async fn metrics<S: Store>(State(app): State<AppState<S>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
}
