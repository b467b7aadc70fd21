//! `GET/PUT /api/customers/{id}`.

use super::{if_match, AppError};
use crate::{
    app::App,
    customers::{parse_edit, Saved},
    store::Stored,
};
use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

/// `GET /api/customers/{id}`: 200 `{"_id", "_version", "name", "email",
/// "address"}` with `ETag: "<version>"`; 404 `unknown_customer`; 400
/// `invalid_id`.
pub async fn get_customer(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let stored = app.customers.get(&id).await?;
    Ok(answer(StatusCode::OK, &stored))
}

/// `PUT /api/customers/{id}` with the fields and `_version` (or
/// `If-Match`) of the version the change was based on — none to create:
/// 201 created, 200 written or merged, 409 with the conflicts (nothing
/// written), 400 with a code for bad input.
pub async fn put_customer(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let edit = parse_edit(&id, &body, if_match(&headers)?)?;
    Ok(match app.customers.save(&id, edit).await? {
        Saved::Created(stored) => answer(StatusCode::CREATED, &stored),
        Saved::Updated(stored) => answer(StatusCode::OK, &stored),
    })
}

/// The document with its version as the ETag.
fn answer(status: StatusCode, stored: &Stored) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", stored.version))
        .unwrap_or_else(|_| unreachable!("a number in quotes is a valid header value"));
    (status, [(header::ETAG, etag)], Json(stored.to_json())).into_response()
}
