//! The JSON error answer shared by the demo services.

use axum::{
    extract::Request,
    http::{header, StatusCode},
    middleware::Next,
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

/// Middleware: an error answer that is not JSON — one axum or a layer made
/// as plain text (a body over the limit: 413; an unreadable form: 422) —
/// goes out as the JSON error body instead, with the same status and its
/// text as the message, so that every error a client sees has a code.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_error || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Such texts are a line; a longer one is cut, not waited for.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        message
    };
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut answer = JsonError::new(status, code_for(status), message).into_response();
    for (name, value) in &parts.headers {
        answer.headers_mut().append(name, value.clone());
    }
    answer
}

/// The error code of a status, for answers that came without one.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Body, routing::post, Router};
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_plain_text_rejection_goes_out_as_the_json_error() {
        let app = Router::new()
            .route("/echo", post(|body: axum::body::Bytes| async move { body }))
            .layer(axum::extract::DefaultBodyLimit::max(8))
            .layer(axum::middleware::from_fn(json_errors));
        let request = Request::post("/echo")
            .body(Body::from("more than eight bytes"))
            .expect("request");
        let response = app.clone().oneshot(request).await.expect("answer");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(json["error"]["code"], "payload_too_large", "{json}");
        let fine = Request::post("/echo")
            .body(Body::from("short"))
            .expect("request");
        let response = app.oneshot(fine).await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
    }
}
