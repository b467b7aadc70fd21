//! Bearer-token auth on writes.

use super::error::AppError;
use axum::{
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use beacon_kit::auth::{check_bearer, BearerError};
use beacon_wire::ErrorCode;
use std::sync::Arc;

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
    check_bearer(request.headers(), expected).map_err(|refused| {
        let message = match refused {
            BearerError::Missing => "writes need an `Authorization: Bearer <token>` header",
            BearerError::Wrong => "the bearer token is not the registry's token",
        };
        AppError::new(ErrorCode::Unauthorized, message)
    })?;
    Ok(next.run(request).await)
}
