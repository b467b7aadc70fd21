//! One error type for the market's handlers, answered as JSON.
//!
//! Most errors are `{"error": {"code", "message"}}` with a status; a few
//! carry more: a stale checkout answers the current cart beside the error,
//! and a conflicting save answers the conflict body the page shows
//! (`{"message", "conflicts", "yours", "ours", "base"}`).

use crate::cart::{CartError, CartView};
use crate::customers::CustomerError;
use crate::merge::ConflictBody;
use crate::store::StoreError;
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use beacon_kit::error::JsonError;

/// What a handler answers when it can't do what was asked.
#[derive(Debug)]
pub enum AppError {
    /// A plain error.
    Plain(JsonError),
    /// A checkout based on a cart that changed since: 409 with the cart.
    StaleCart(JsonError, CartView),
    /// A save whose fields were changed two ways: 409 with the versions.
    Conflict(Box<ConflictBody>),
}

impl AppError {
    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::Plain(JsonError::new(StatusCode::BAD_REQUEST, code, message))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Plain(error) => error.into_response(),
            Self::StaleCart(error, cart) => {
                let body = serde_json::json!({
                    "error": {"code": error.code, "message": error.message},
                    "cart": cart,
                });
                (error.status, Json(body)).into_response()
            }
            Self::Conflict(body) => (StatusCode::CONFLICT, Json(body)).into_response(),
        }
    }
}

/// The status and code of a store failure: a row that does not verify is
/// refused (409 `tampered`: what is stored conflicts with what the market
/// wrote, and asking again won't change that); a full disk is 507
/// `insufficient_storage` (nothing written; it helps to try again only once
/// space is freed); a database that fails or does not answer in time is
/// the one outage the market can't hide (503 `store_unavailable`).
fn store_error(error: &StoreError) -> JsonError {
    let status = match error {
        StoreError::Tampered { .. } => StatusCode::CONFLICT,
        StoreError::Full(_) | StoreError::LastWriteFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    if status.is_server_error() {
        tracing::error!("store: {error}");
    }
    JsonError::new(status, error.code(), error.to_string())
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        Self::Plain(store_error(&error))
    }
}

impl From<CartError> for AppError {
    fn from(error: CartError) -> Self {
        let status = match &error {
            CartError::Store(store) => return Self::Plain(store_error(store)),
            CartError::UnknownThing(_) | CartError::NotInCart(_) => StatusCode::NOT_FOUND,
            CartError::UnknownVersion { .. } => StatusCode::BAD_REQUEST,
            CartError::AlreadyInCart(_) | CartError::Empty | CartError::Stale { .. } => {
                StatusCode::CONFLICT
            }
            CartError::Contended => StatusCode::SERVICE_UNAVAILABLE,
        };
        let json = JsonError::new(status, error.code(), error.to_string());
        match error {
            CartError::Stale { current, .. } => Self::StaleCart(json, current),
            _ => Self::Plain(json),
        }
    }
}

impl From<CustomerError> for AppError {
    fn from(error: CustomerError) -> Self {
        let (status, code) = match error {
            CustomerError::Store(ref store) => return Self::Plain(store_error(store)),
            CustomerError::Conflict(body) => return Self::Conflict(body),
            CustomerError::Invalid { code, .. } => (StatusCode::BAD_REQUEST, code),
            CustomerError::Unknown(_) => (StatusCode::NOT_FOUND, "unknown_customer"),
            CustomerError::Exists(_) => (StatusCode::CONFLICT, "customer_exists"),
            CustomerError::NoSuchVersion { .. } => (StatusCode::BAD_REQUEST, "unknown_version"),
            CustomerError::TooOld { .. } => (StatusCode::CONFLICT, "version_too_old"),
            CustomerError::Contended => (StatusCode::SERVICE_UNAVAILABLE, "contended"),
        };
        Self::Plain(JsonError::new(status, code, error.to_string()))
    }
}
