//! Extractors that validate as they extract, rejecting with [`AppError`].

use super::error::AppError;
use axum::{
    extract::{FromRequest, FromRequestParts, Path, Query},
    http::request::Parts,
};
use beacon_wire::{ErrorCode, InstanceId, LeaseId, ServiceName};
use serde::Deserialize;

/// A JSON body; a bad one is `invalid_json`, `payload_too_large` or
/// `unsupported_media_type`.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct JsonBody<T>(pub T);

/// Query parameters; unparseable ones are `invalid_query`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(Query), rejection(AppError))]
pub struct QueryParams<T>(pub T);

/// `{service}` in the path, validated.
#[derive(Debug)]
pub struct ServicePath(pub ServiceName);

/// `{service}` and `{id}` in the path, validated.
#[derive(Debug)]
pub struct InstancePath {
    /// The service.
    pub service: ServiceName,
    /// The instance id.
    pub id: InstanceId,
}

/// `{lease}` in the path, validated.
#[derive(Debug)]
pub struct LeasePath(pub LeaseId);

#[derive(Debug, Deserialize)]
struct LeaseSegment {
    lease: String,
}

#[derive(Debug, Deserialize)]
struct ServiceSegment {
    service: String,
}

#[derive(Debug, Deserialize)]
struct InstanceSegments {
    service: String,
    id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for ServicePath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Path(raw) = Path::<ServiceSegment>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::new(ErrorCode::InvalidName, e.body_text()))?;
        Ok(Self(raw.service.parse()?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for InstancePath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Path(raw) = Path::<InstanceSegments>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::new(ErrorCode::InvalidName, e.body_text()))?;
        Ok(Self {
            service: raw.service.parse()?,
            id: raw.id.parse()?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for LeasePath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Path(raw) = Path::<LeaseSegment>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::new(ErrorCode::InvalidName, e.body_text()))?;
        Ok(Self(raw.lease.parse()?))
    }
}
