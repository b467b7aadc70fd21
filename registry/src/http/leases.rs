//! Shared leases: grant, keep alive, end.

use super::{
    auth::{Target, Writer},
    error::AppError,
    extract::{JsonBody, LeasePath},
    instances::WriteRefusals,
    AppState,
};
use crate::store::{Owner, Store};
use axum::{extract::State, http::StatusCode, Extension, Json};
use beacon_wire::{ErrorBody, GrantRequest, LeaseGrant, LeaseId, LeaseStatus};

/// The path parameter of a lease's routes, for the API description.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by the OpenAPI derive only
pub struct LeasePathDoc {
    /// The lease id `POST /v1/leases` gave.
    lease: LeaseId,
}

/// `POST /v1/leases`: 201 with the new lease.
#[utoipa::path(
    post,
    path = "/v1/leases",
    tag = "leases",
    request_body(content = GrantRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Granted", body = LeaseGrant),
        (status = 400, description = "Bad TTL or JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body without Content-Type: application/json", body = ErrorBody),
        WriteRefusals,
    ),
    security((), ("bearer" = []))
)]
pub async fn grant<S: Store>(
    State(app): State<AppState<S>>,
    writer: Option<Extension<Writer>>,
    JsonBody(request): JsonBody<GrantRequest>,
) -> Result<(StatusCode, Json<LeaseGrant>), AppError> {
    let ttl = request.validate()?;
    let owner = writer.map(|w| Owner::from(w.who.as_str()));
    let grant = app.store.grant_as(ttl, owner).await?;
    tracing::info!(lease = %grant.lease, ttl_ms = grant.ttl_ms, "lease granted");
    Ok((StatusCode::CREATED, Json(grant)))
}

/// `PUT /v1/leases/{lease}/keepalive`: renews the lease and every instance
/// on it; 404 `unknown_lease` tells the caller to grant a new one.
#[utoipa::path(
    put,
    path = "/v1/leases/{lease}/keepalive",
    tag = "leases",
    params(LeasePathDoc),
    responses(
        (status = 200, description = "Renewed", body = LeaseStatus),
        (status = 400, description = "Bad lease id", body = ErrorBody),
        (status = 404, description = "Unknown lease: grant a new one", body = ErrorBody),
        WriteRefusals,
    ),
    security((), ("bearer" = []))
)]
pub async fn keep_alive<S: Store>(
    State(app): State<AppState<S>>,
    writer: Option<Extension<Writer>>,
    LeasePath(lease): LeasePath,
) -> Result<Json<LeaseStatus>, AppError> {
    app.authorize(writer.as_deref(), Target::Lease(&lease), "keepalive")?;
    let status = app.store.keep_alive(&lease).await?;
    app.metrics.keepalives.inc();
    Ok(Json(status))
}

/// `DELETE /v1/leases/{lease}`: 204; every instance on it goes at once.
#[utoipa::path(
    delete,
    path = "/v1/leases/{lease}",
    tag = "leases",
    params(LeasePathDoc),
    responses(
        (status = 204, description = "Ended, with every instance on it"),
        (status = 400, description = "Bad lease id", body = ErrorBody),
        (status = 404, description = "Unknown lease", body = ErrorBody),
        WriteRefusals,
    ),
    security((), ("bearer" = []))
)]
pub async fn revoke<S: Store>(
    State(app): State<AppState<S>>,
    writer: Option<Extension<Writer>>,
    LeasePath(lease): LeasePath,
) -> Result<StatusCode, AppError> {
    app.authorize(writer.as_deref(), Target::Lease(&lease), "end lease")?;
    app.store.revoke(&lease).await?;
    Ok(StatusCode::NO_CONTENT)
}
