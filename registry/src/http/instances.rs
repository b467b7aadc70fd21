//! Writes: register, heartbeat, deregister.

use super::{
    auth::{check_peer, Target, Writer},
    error::AppError,
    extract::{InstancePath, JsonBody, QueryParams},
    AppState,
};
use crate::store::{Registered, Store};
use axum::{extract::State, http::StatusCode, Extension, Json};
use beacon_kit::identity::PeerNames;
use beacon_wire::{
    ErrorBody, ErrorCode, HeartbeatQuery, Instance, InstanceId, RegisterRequest, ServiceName,
};
use serde::Deserialize;

/// The raw query of a heartbeat; [`HeartbeatQuery::parse`] checks it.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HeartbeatParams {
    /// The `registered_at` of the registration this heartbeat renews: if
    /// the instance was registered again since (by anyone), 404
    /// `unknown_instance`, and the sender registers its own again.
    #[param(value_type = Option<i64>, minimum = 0)]
    registered_at: Option<String>,
}

/// What every write may answer besides its own outcomes, for the API
/// description.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // read by the OpenAPI derive only
pub(super) enum WriteRefusals {
    /// Writes need the bearer token.
    #[response(status = 401, description = "Writes need the bearer token")]
    Unauthorized(ErrorBody),
    /// The token may not write this service (under `--acl`).
    #[response(status = 403, description = "The token may not write this service")]
    Forbidden(ErrorBody),
    /// The store can't take writes.
    #[response(status = 503, description = "The store can't take writes")]
    StoreUnavailable(ErrorBody),
}

/// The path parameters of an instance's routes, for the API description.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by the OpenAPI derive only
pub struct InstancePathDoc {
    /// The service name.
    service: ServiceName,
    /// The instance id.
    id: InstanceId,
}

/// `PUT /v1/services/{service}/instances/{id}`: 201 when new, 200 when replaced.
#[utoipa::path(
    put,
    path = "/v1/services/{service}/instances/{id}",
    tag = "instances",
    params(InstancePathDoc),
    request_body(content = RegisterRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = Instance),
        (status = 200, description = "Registration replaced (same address or new metadata)", body = Instance),
        (status = 400, description = "Bad name, address, TTL or JSON; both a TTL and a lease", body = ErrorBody),
        (status = 404, description = "The lease named is not held: grant a new one", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body without Content-Type: application/json", body = ErrorBody),
        (status = 429, description = "A new instance past the registry's limits", body = ErrorBody),
        WriteRefusals,
    ),
    security((), ("bearer" = []))
)]
pub async fn register<S: Store>(
    State(app): State<AppState<S>>,
    writer: Option<Extension<Writer>>,
    peer: Option<Extension<PeerNames>>,
    InstancePath { service, id }: InstancePath,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<Instance>), AppError> {
    check_peer(peer.as_deref(), &service, &app.metrics, "register")?;
    let owner = app.authorize(
        writer.as_deref(),
        Target::Instance(&service, &id),
        "register",
    )?;
    let registration = request.validate()?;
    if let Some(lease) = &registration.lease {
        app.authorize(writer.as_deref(), Target::Lease(lease), "register on lease")?;
    }
    app.store
        .catalog()
        .admits(&service, &id)
        .map_err(|full| AppError::new(ErrorCode::TooManyInstances, full.to_string()))?;
    let outcome = app
        .store
        .register_as(service, id, registration, owner)
        .await?;
    app.metrics.registrations.inc();
    Ok(match outcome {
        Registered::Created(instance) => {
            tracing::info!(service = %instance.service, id = %instance.id, address = %instance.address, "registered");
            (StatusCode::CREATED, Json(instance))
        }
        Registered::Replaced(instance) => {
            tracing::debug!(service = %instance.service, id = %instance.id, "registration refreshed");
            (StatusCode::OK, Json(instance))
        }
    })
}

/// `PUT /v1/services/{service}/instances/{id}/heartbeat`: renews the lease;
/// 404 `unknown_instance` tells the caller to register again.
#[utoipa::path(
    put,
    path = "/v1/services/{service}/instances/{id}/heartbeat",
    tag = "instances",
    params(InstancePathDoc, HeartbeatParams),
    responses(
        (status = 200, description = "Lease renewed", body = Instance),
        (status = 400, description = "Bad name or query", body = ErrorBody),
        (status = 404, description = "Unknown instance, or registered again since: register again", body = ErrorBody),
        WriteRefusals,
    ),
    security((), ("bearer" = []))
)]
pub async fn heartbeat<S: Store>(
    State(app): State<AppState<S>>,
    writer: Option<Extension<Writer>>,
    peer: Option<Extension<PeerNames>>,
    InstancePath { service, id }: InstancePath,
    QueryParams(params): QueryParams<HeartbeatParams>,
) -> Result<Json<Instance>, AppError> {
    let query = HeartbeatQuery::parse(params.registered_at.as_deref()).map_err(AppError::from)?;
    check_peer(peer.as_deref(), &service, &app.metrics, "heartbeat")?;
    app.authorize(
        writer.as_deref(),
        Target::Instance(&service, &id),
        "heartbeat",
    )?;
    let instance = app.store.heartbeat(&service, &id).await?;
    app.metrics.heartbeats.inc();
    // Renewed, but someone else's registration: the sender's own was
    // replaced. It is told so, and registers its own again within this
    // heartbeat's round trip rather than keeping the other alive.
    if let Some(expected) = query.registered_at {
        if instance.registered_at != expected {
            return Err(AppError::new(
                ErrorCode::UnknownInstance,
                format!(
                    "{service}/{id} was registered again since (registered_at {} is not {expected}): register yours again",
                    instance.registered_at
                ),
            ));
        }
    }
    Ok(Json(instance))
}

/// `DELETE /v1/services/{service}/instances/{id}`: 204, or 404 when unknown.
#[utoipa::path(
    delete,
    path = "/v1/services/{service}/instances/{id}",
    tag = "instances",
    params(InstancePathDoc),
    responses(
        (status = 204, description = "Deregistered"),
        (status = 400, description = "Bad name", body = ErrorBody),
        (status = 404, description = "Unknown instance", body = ErrorBody),
        WriteRefusals,
    ),
    security((), ("bearer" = []))
)]
pub async fn deregister<S: Store>(
    State(app): State<AppState<S>>,
    writer: Option<Extension<Writer>>,
    peer: Option<Extension<PeerNames>>,
    InstancePath { service, id }: InstancePath,
) -> Result<StatusCode, AppError> {
    check_peer(peer.as_deref(), &service, &app.metrics, "deregister")?;
    app.authorize(
        writer.as_deref(),
        Target::Instance(&service, &id),
        "deregister",
    )?;
    app.store.deregister(&service, &id).await?;
    app.metrics.deregistrations.inc();
    tracing::info!(%service, %id, "deregistered");
    Ok(StatusCode::NO_CONTENT)
}
