//! Reads: resolve a service (optionally blocking), list all services.

use super::{
    error::AppError,
    extract::{QueryParams, ServicePath},
    AppState,
};
use crate::store::Store;
use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Json,
};
use beacon_wire::{ServiceList, WatchQuery, INDEX_HEADER};
use serde::Deserialize;

/// The raw blocking-query parameters; [`WatchQuery::parse`] checks them.
#[derive(Debug, Deserialize)]
pub struct WatchParams {
    index: Option<String>,
    wait: Option<String>,
}

/// `GET /v1/services/{service}[?index=N&wait=D]`.
pub async fn resolve<S: Store>(
    State(app): State<AppState<S>>,
    ServicePath(service): ServicePath,
    QueryParams(params): QueryParams<WatchParams>,
) -> Result<Response, AppError> {
    let query = WatchQuery::parse(params.index.as_deref(), params.wait.as_deref())?;
    let catalog = app.store.catalog();
    let answer = match query {
        None => catalog.resolve(&service),
        Some(q) => {
            catalog
                .wait_for_change(&service, q.index, q.wait, &app.shutdown)
                .await
        }
    };
    Ok(([(INDEX_HEADER, answer.index.to_string())], Json(answer)).into_response())
}

/// `GET /v1/services`.
pub async fn list<S: Store>(State(app): State<AppState<S>>) -> Json<ServiceList> {
    Json(app.store.catalog().list())
}
