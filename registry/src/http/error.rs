//! `AppError`: every way a request can fail, answered as JSON with a code.

use crate::store::StoreError;
use axum::{
    extract::rejection::{JsonRejection, QueryRejection},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use beacon_wire::{ErrorCode, WireError};

/// A failed request. Converts from every error a handler meets, and answers
/// with the status of its code and an [`ErrorBody`](beacon_wire::ErrorBody).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AppError(#[from] pub WireError);

impl AppError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(WireError::new(code, message))
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        let code = match err {
            StoreError::UnknownInstance { .. } => ErrorCode::UnknownInstance,
            StoreError::UnknownLease(_) => ErrorCode::UnknownLease,
            StoreError::Unavailable(_) => ErrorCode::StoreUnavailable,
        };
        Self::new(code, err.to_string())
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            _ => ErrorCode::InvalidJson,
        };
        Self::new(code, rejection.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(ErrorCode::InvalidQuery, rejection.body_text())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let code = self.0.code;
        if code.status().is_server_error() {
            tracing::error!(%code, message = %self.0.message, "request failed");
        }
        let mut response = (code.status(), Json(self.0.to_body())).into_response();
        if code == ErrorCode::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
