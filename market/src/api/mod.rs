//! The JSON API: things with ratings, status, cart, customers.

mod customers;
mod error;

pub use customers::{find_customers, get_customer, put_customer};
pub use error::AppError;

use crate::{
    app::App,
    cart::{CartView, Receipt},
    panel::status::Status,
    ratings::ShownRating,
    session::Session,
};
use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    Extension, Json,
};
use serde::Serialize;

/// One entry of `GET /api/things`.
#[derive(Debug, Serialize)]
pub struct ThingWithRating {
    id: &'static str,
    name: &'static str,
    price_cents: u32,
    rating: ShownRating,
}

/// `GET /api/things`: always 200 within the page deadline.
pub async fn things(State(app): State<App>) -> Json<Vec<ThingWithRating>> {
    let rows = app
        .board
        .all()
        .await
        .into_iter()
        .map(|(thing, rating)| ThingWithRating {
            id: thing.id,
            name: thing.name,
            price_cents: thing.price_cents,
            rating,
        })
        .collect();
    Json(rows)
}

/// `GET /api/status`.
pub async fn status(State(app): State<App>) -> Json<Status> {
    Json(app.status())
}

/// `GET /api/cart`: the cart with its `_version`.
pub async fn cart(
    State(app): State<App>,
    Extension(session): Extension<Session>,
) -> Result<Json<CartView>, AppError> {
    Ok(Json(app.carts.view(&session.cart_id).await?))
}

/// `POST /api/cart/items/{thing}`: 201 with the cart at its new version;
/// 409 `already_in_cart`; 404 `unknown_thing`. A version sent (`If-Match`
/// or `{"_version"}`) may be older than the cart's — adds and removes merge
/// as sets — but not newer: 400 `unknown_version`.
pub async fn add(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Path(thing): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<CartView>), AppError> {
    let based_on = seen_version(&headers, &body)?;
    let view = app.carts.add(&session.cart_id, &thing, based_on).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `DELETE /api/cart/items/{thing}`: 200 with the cart at its new version;
/// 404 `not_in_cart`; a version as for adding.
pub async fn remove(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Path(thing): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CartView>, AppError> {
    let based_on = seen_version(&headers, &body)?;
    Ok(Json(
        app.carts.remove(&session.cart_id, &thing, based_on).await?,
    ))
}

/// `POST /api/checkout`, based on the cart version in `If-Match` or the
/// body's `_version` (neither: the current cart): 200 with the receipt;
/// 409 `stale_cart` with the current cart, `cart_empty`.
pub async fn checkout(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Receipt>, AppError> {
    let seen = seen_version(&headers, &body)?;
    Ok(Json(app.carts.checkout(&session.cart_id, seen).await?))
}

/// The version a change was based on, from `If-Match` or the body's
/// `_version` (they must agree when both are sent).
fn seen_version(headers: &HeaderMap, body: &[u8]) -> Result<Option<i64>, AppError> {
    let header = if_match(headers)?;
    let in_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            AppError::bad_request("invalid_json", format!("the body is not JSON: {e}"))
        })?;
        match value.get("_version") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_i64().filter(|v| *v >= 0).ok_or_else(|| {
                AppError::bad_request(
                    "invalid_version",
                    format!("_version must be a whole number, not {v}"),
                )
            })?),
        }
    };
    match (in_body, header) {
        (Some(a), Some(b)) if a != b => Err(AppError::bad_request(
            "version_mismatch",
            format!("_version {a} and If-Match {b} disagree"),
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// The version in an `If-Match: "N"` header, if one was sent.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, AppError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v >= 0)
        .map(Some)
        .ok_or_else(|| {
            AppError::bad_request(
                "invalid_version",
                "If-Match must be a version in quotes, as the ETag gave it (\"3\")",
            )
        })
}
