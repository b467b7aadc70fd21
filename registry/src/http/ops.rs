//! Operations endpoints: `/_health` and `/_metrics`.

use super::{error::AppError, extract::QueryParams, AppState};
use crate::store::Store;
use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use beacon_wire::ErrorCode;
use serde::{Deserialize, Serialize};

/// `?deep=true` asks for a store check too.
#[derive(Debug, Deserialize)]
pub struct HealthParams {
    deep: Option<String>,
}

/// Body of `/_health`.
#[derive(Debug, Serialize)]
pub struct Health {
    status: &'static str,
    store: &'static str,
    services: usize,
    instances: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `GET /_health[?deep=true]`: 200 when serving; with `deep`, 503 when the
/// store can't take writes.
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
    };
    Ok((status, Json(body)).into_response())
}

/// `GET /_metrics`: Prometheus text exposition.
pub async fn metrics<S: Store>(State(app): State<AppState<S>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
}
