//! Bearer-token auth on writes.

use super::error::AppError;
use axum::{
    extract::{Request, State},
    http::{header, Method},
    middleware::Next,
    response::Response,
};
use beacon_wire::ErrorCode;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The token writes must carry, if any. Reads are always open: watchers
/// and dashboards should not need a secret.
#[derive(Debug, Clone, Default)]
pub struct WriteToken(pub Option<Arc<str>>);

/// Middleware: every request other than GET/HEAD/OPTIONS must carry
/// `Authorization: Bearer <token>` when a token is set. Runs before the body
/// is read, so an unauthenticated caller learns nothing about its input.
pub async fn require_token(
    State(token): State<WriteToken>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let Some(expected) = token.0.as_deref() else {
        return Ok(next.run(request).await);
    };
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return Ok(next.run(request).await);
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        None => Err(AppError::new(
            ErrorCode::Unauthorized,
            "writes need an `Authorization: Bearer <token>` header",
        )),
        // Constant-time, so response timing doesn't leak the token.
        Some(given) if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) => {
            Ok(next.run(request).await)
        }
        Some(_) => Err(AppError::new(
            ErrorCode::Unauthorized,
            "the bearer token is not the registry's token",
        )),
    }
}
