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
    extract::{FromRequestParts, Path, State},
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

/// The document with its version as the ETag.
fn answer(status: StatusCode, stored: &Stored) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", stored.version))
        .unwrap_or_else(|_| unreachable!("a number in quotes is a valid header value"));
    (status, [(header::ETAG, etag)], Json(stored.to_json())).into_response()
}
