//! The JSON error answer shared by the demo services.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

/// An error answered as `{"error":{"code":..,"message":..}}` with a status.
/// Codes are stable snake_case words for programs; messages are for people.
#[derive(Debug, Clone)]
pub struct JsonError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The machine-readable code, e.g. `unknown_thing`.
    pub code: &'static str,
    /// What went wrong, naming the offending input.
    pub message: String,
}

impl JsonError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// `404 not_found`, for fallbacks.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }
}

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}
