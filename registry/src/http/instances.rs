//! Writes: register, heartbeat, deregister.

use super::{
    error::AppError,
    extract::{InstancePath, JsonBody},
    AppState,
};
use crate::store::{Registered, Store};
use axum::{extract::State, http::StatusCode, Json};
use beacon_wire::{Instance, RegisterRequest};

/// `PUT /v1/services/{service}/instances/{id}`: 201 when new, 200 when replaced.
pub async fn register<S: Store>(
    State(app): State<AppState<S>>,
    InstancePath { service, id }: InstancePath,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<Instance>), AppError> {
    let registration = request.validate()?;
    let outcome = app.store.register(service, id, registration).await?;
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
pub async fn heartbeat<S: Store>(
    State(app): State<AppState<S>>,
    InstancePath { service, id }: InstancePath,
) -> Result<Json<Instance>, AppError> {
    let instance = app.store.heartbeat(&service, &id).await?;
    app.metrics.heartbeats.inc();
    Ok(Json(instance))
}

/// `DELETE /v1/services/{service}/instances/{id}`: 204, or 404 when unknown.
pub async fn deregister<S: Store>(
    State(app): State<AppState<S>>,
    InstancePath { service, id }: InstancePath,
) -> Result<StatusCode, AppError> {
    app.store.deregister(&service, &id).await?;
    app.metrics.deregistrations.inc();
    tracing::info!(%service, %id, "deregistered");
    Ok(StatusCode::NO_CONTENT)
}
