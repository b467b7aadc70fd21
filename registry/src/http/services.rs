//! Reads: resolve a service (optionally blocking), list all services.

use super::{
    changes_stream,
    error::AppError,
    extract::{QueryParams, ServicePath},
    AppState,
};
use crate::store::Store;
use axum::{
    extract::State,
    http::header::CONTENT_TYPE,
    response::{IntoResponse, Response},
    Json,
};
use beacon_wire::{
    ErrorBody, ServiceChanges, ServiceInstances, ServiceList, StreamQuery, SubsetQuery, WatchQuery,
    INDEX_HEADER,
};
use serde::Deserialize;

/// The raw blocking-query parameters; [`WatchQuery::parse`] checks them.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WatchParams {
    /// Answer once the service's index is no longer this one (a blocking
    /// query); without it, answer at once.
    #[param(value_type = Option<i64>, minimum = 0)]
    index: Option<String>,
    /// Longest wait of a blocking query: `250ms`, `30s`, `1m`; at most 60 s,
    /// 30 s when absent.
    #[param(pattern = "^(([0-9]{1,4}|[1-5][0-9]{4}|60000)ms|([0-9]|[1-5][0-9]|60)s|[01]m)$")]
    wait: Option<String>,
}

/// The raw parameters of a changes read: a blocking query's, and a subset's.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesParams {
    /// Answer once the service's index is no longer this one (a blocking
    /// query); without it, answer at once.
    #[param(value_type = Option<i64>, minimum = 0)]
    index: Option<String>,
    /// Longest wait of a blocking query: `250ms`, `30s`, `1m`; at most 60 s,
    /// 30 s when absent.
    #[param(pattern = "^(([0-9]{1,4}|[1-5][0-9]{4}|60000)ms|([0-9]|[1-5][0-9]|60)s|[01]m)$")]
    wait: Option<String>,
    /// Answer only this client's subset of this many instances (with `client`).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    subset: Option<String>,
    /// The asking client's lease (with `subset`): it ranks the client among
    /// those asking for subsets.
    #[param(value_type = Option<beacon_wire::LeaseId>)]
    client: Option<String>,
    /// `true`: one long answer of newline-delimited JSON
    /// (`application/x-ndjson`), a line per changes read from `index` on
    /// (a snapshot first without it), and a line with no changes after
    /// `wait` (at least 1 s) of quiet.
    #[param(value_type = Option<bool>)]
    stream: Option<String>,
}

/// The path parameter of a service's route, for the API description.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by the OpenAPI derive only
pub struct ServicePathDoc {
    /// The service name.
    service: beacon_wire::ServiceName,
}

/// `GET /v1/services/{service}[?index=N&wait=D]`.
#[utoipa::path(
    get,
    path = "/v1/services/{service}",
    tag = "services",
    params(ServicePathDoc, WatchParams),
    responses(
        (status = 200, description = "The service's live instances and its index",
            body = ServiceInstances,
            headers(("X-Beacon-Index" = u64, description = "The index, as in the body"))),
        (status = 400, description = "Bad name or query", body = ErrorBody),
    )
)]
pub async fn resolve<S: Store>(
    State(app): State<AppState<S>>,
    ServicePath(service): ServicePath,
    QueryParams(params): QueryParams<WatchParams>,
) -> Result<Response, AppError> {
    let query = WatchQuery::parse(params.index.as_deref(), params.wait.as_deref())?;
    let catalog = app.store.catalog();
    let (index, json) = match query {
        None => catalog.resolve_json(&service),
        Some(q) => {
            catalog
                .wait_for_change_json(&service, q.index, q.wait, &app.shutdown)
                .await
        }
    };
    Ok(json_with_index(index, json))
}

/// A JSON answer made already, its index also in [`INDEX_HEADER`].
fn json_with_index(index: u64, json: bytes::Bytes) -> Response {
    let headers = [
        (INDEX_HEADER, index.to_string()),
        (CONTENT_TYPE.as_str(), "application/json".to_owned()),
    ];
    (headers, json).into_response()
}

/// `GET /v1/services/{service}/changes[?index=N&wait=D]`: what changed
/// after index N, in order (blocking while nothing did), or a snapshot when
/// N is absent, 0, or older than the changes kept.
#[utoipa::path(
    get,
    path = "/v1/services/{service}/changes",
    tag = "services",
    params(ServicePathDoc, ChangesParams),
    responses(
        (status = 200, description = "The changes after the index (or a snapshot) and the new index; with a subset, the client's subset. With `stream=true`, one long answer of such objects, a line each",
            content(
                (ServiceChanges = "application/json"),
                (ServiceChanges = "application/x-ndjson"),
            ),
            headers(("X-Beacon-Index" = u64, description = "The index, as in the body"))),
        (status = 400, description = "Bad name or query", body = ErrorBody),
        (status = 404, description = "The subset's client lease is not held", body = ErrorBody),
    )
)]
pub async fn changes<S: Store>(
    State(app): State<AppState<S>>,
    ServicePath(service): ServicePath,
    QueryParams(params): QueryParams<ChangesParams>,
) -> Result<Response, AppError> {
    // No index: a first sync, at once.
    let after = WatchQuery::parse(params.index.as_deref(), params.wait.as_deref())?;
    let subset = SubsetQuery::parse(params.subset.as_deref(), params.client.as_deref())?;
    let stream = StreamQuery::parse(
        params.stream.as_deref(),
        params.index.as_deref(),
        params.wait.as_deref(),
    )?;
    let catalog = app.store.catalog();
    if let Some(stream) = stream {
        if let Some(subset) = &subset {
            // Refused now, while there is still a status to say so with.
            catalog.lease_status(&subset.client)?;
        }
        return Ok(changes_stream::answer(
            app.clone(),
            service,
            stream.index,
            stream.wait,
            subset,
        ));
    }
    match subset {
        None => {
            let (index, json) = catalog
                .read_changes_json(&service, after, &app.shutdown)
                .await;
            Ok(json_with_index(index, json))
        }
        Some(subset) => {
            let answer = catalog
                .read_subset(&service, after, &subset, &app.shutdown)
                .await?;
            Ok(with_index(answer.index, answer))
        }
    }
}

/// `body` as JSON, its index also in [`INDEX_HEADER`].
fn with_index(index: u64, body: impl serde::Serialize) -> Response {
    ([(INDEX_HEADER, index.to_string())], Json(body)).into_response()
}

/// `GET /v1/services`.
#[utoipa::path(
    get,
    path = "/v1/services",
    tag = "services",
    responses((status = 200, description = "Every service with its instances", body = ServiceList))
)]
pub async fn list<S: Store>(State(app): State<AppState<S>>) -> Json<ServiceList> {
    Json(app.store.catalog().list())
}
