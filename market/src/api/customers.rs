//! `GET/PUT /api/customers/{id}`: a session's own customer record, or
//! any with the admin token.

use super::{if_match, AppError};
use crate::{
    access::Access,
    app::App,
    customers::{parse_edit, Saved},
    session::Session,
    store::Stored,
};
use axum::{
    body::Bytes,
    extract::{rejection::QueryRejection, FromRequestParts, Path, Query, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use beacon_kit::{auth::check_bearer, error::JsonError};

/// Who asks, from the request: support with `Authorization: Bearer
/// <admin token>`, else the caller's session. A bearer token that is not
/// the admin's is refused (401 `unauthorized`) rather than quietly read as
/// a session.
impl FromRequestParts<App> for Access {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, AppError> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let refused = |why: String| {
                AppError::Plain(JsonError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    why,
                ))
            };
            let Some(admin) = app.admin_token.as_deref() else {
                return Err(refused(
                    "this market has no admin token (--admin-token)".into(),
                ));
            };
            return match check_bearer(&parts.headers, admin) {
                Ok(()) => Ok(Access::Admin),
                Err(e) => Err(refused(e.to_string())),
            };
        }
        let session = parts.extensions.get::<Session>().ok_or_else(|| {
            AppError::Plain(JsonError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "no session",
            ))
        })?;
        Ok(Access::Session(session.owner.clone()))
    }
}

/// `GET /api/customers/{id}`: 200 `{"_id", "_version", "name", "email",
/// "address"}` with `ETag: "<version>"`; 404 `unknown_customer` (also for
/// another session's); 400 `invalid_id`.
pub async fn get_customer(
    State(app): State<App>,
    access: Access,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let stored = app.customers.get(&id, &access).await?;
    Ok(answer(StatusCode::OK, &stored))
}

/// `PUT /api/customers/{id}` with the fields and `_version` (or
/// `If-Match`) of the version the change was based on — none to create:
/// 201 created (owned by the caller's session), 200 written or merged,
/// 409 with the conflicts (nothing written), 404 `unknown_customer` for
/// another session's, 400 with a code for bad input.
pub async fn put_customer(
    State(app): State<App>,
    access: Access,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let edit = parse_edit(&id, &body, if_match(&headers)?)?;
    Ok(match app.customers.save(&id, edit, &access).await? {
        Saved::Created(stored) => answer(StatusCode::CREATED, &stored),
        Saved::Updated(stored) => answer(StatusCode::OK, &stored),
    })
}

/// `?email=E` of `GET /api/customers`.
#[derive(Debug, serde::Deserialize)]
pub struct EmailQuery {
    email: String,
}

/// `GET /api/customers?email=E`: `{"customers": [...]}`, those with that
/// email the caller may see (all, with the admin token; else its own).
/// 400 `invalid_query` without an email.
pub async fn find_customers(
    State(app): State<App>,
    access: Access,
    query: Result<Query<EmailQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    let Query(query) = query
        .map_err(|e| AppError::bad_request("invalid_query", format!("give ?email=ADDRESS: {e}")))?;
    let found = app.customers.find_by_email(&query.email, &access).await?;
    let customers: Vec<_> = found.iter().map(Stored::to_json).collect();
    Ok(Json(serde_json::json!({ "customers": customers })))
}

/// The document with its version as the ETag.
fn answer(status: StatusCode, stored: &Stored) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", stored.version))
        .unwrap_or_else(|_| unreachable!("a number in quotes is a valid header value"));
    (status, [(header::ETAG, etag)], Json(stored.to_json())).into_response()
}
