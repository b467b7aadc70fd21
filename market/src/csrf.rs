//! Writes only from the market's own pages (or from programs that aren't
//! browsers): a page on another origin — another port of the same host
//! included — can't make a visitor's browser change their cart or details.
//!
//! Three checks, after OWASP's CSRF cheat sheet:
//! - **Origin.** A write whose `Origin` header names another origin than
//!   the one it was sent to is refused (403 `csrf`). Browsers send `Origin`
//!   on every cross-origin write; curl and other programs send none and
//!   are let through.
//! - **JSON.** A JSON API write with a body must say `Content-Type:
//!   application/json` (else 415): a cross-origin page can't send that
//!   without the browser asking first (a CORS preflight, which the market
//!   never grants).
//! - **A token.** The page's forms carry the session's CSRF token (a hidden
//!   field); its scripts send it as `X-CSRF-Token`. A form post without it,
//!   or with another session's, is refused; a token sent with an API write
//!   must be the session's too.

use crate::session::Session;
use axum::{
    extract::Request,
    http::{header, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use beacon_kit::error::JsonError;
use subtle::ConstantTimeEq;

/// The header the page's scripts send the token in.
pub const TOKEN_HEADER: &str = "x-csrf-token";

/// The form field the page's forms send the token in.
pub const TOKEN_FIELD: &str = "csrf";

/// 403 `csrf`: nothing was changed.
pub fn refused(why: &str) -> Response {
    JsonError::new(
        StatusCode::FORBIDDEN,
        "csrf",
        format!("refused as a cross-site request: {why}; nothing was changed"),
    )
    .into_response()
}

/// Whether `presented` is `session`'s token (compared in constant time).
pub fn is_sessions_token(session: &Session, presented: Option<&str>) -> bool {
    presented.is_some_and(|token| bool::from(token.as_bytes().ct_eq(session.csrf.as_bytes())))
}

/// Middleware on every request: writes from another origin are refused,
/// JSON API writes must be JSON, and a token sent must be the session's.
/// Reads (`GET`, `HEAD`, `OPTIONS`) pass untouched.
pub async fn guard(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    if let Some(why) = foreign_origin(request.headers(), request.uri()) {
        return refused(&why);
    }
    if request.uri().path().starts_with("/api/") {
        if has_body(request.headers()) && !is_json(request.headers()) {
            return JsonError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the API takes JSON: send Content-Type: application/json",
            )
            .into_response();
        }
        let sent = request.headers().get(TOKEN_HEADER);
        if let Some(sent) = sent {
            let session = request.extensions().get::<Session>();
            let ok = session.is_some_and(|s| is_sessions_token(s, sent.to_str().ok()));
            if !ok {
                return refused("the X-CSRF-Token is not this session's");
            }
        }
    }
    next.run(request).await
}

/// Why the request's `Origin` is not where it was sent (its `Host`), if it
/// is not. No `Origin` (not a browser, or a same-origin `GET`): `None`.
fn foreign_origin(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("(unreadable)");
    // HTTP/1 names the target in Host; HTTP/2 in the URI's authority.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match (authority, host) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => None,
        _ => Some(format!(
            "Origin {origin} is not this site ({})",
            host.unwrap_or("no Host")
        )),
    }
}

/// Whether the request says it has a body.
fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(length) => length > 0,
        None => {
            headers.contains_key(header::TRANSFER_ENCODING)
                || headers.contains_key(header::CONTENT_TYPE)
        }
    }
}

/// Whether the body is said to be JSON (`application/json`, any
/// parameters).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header"));
        }
        map
    }

    #[test]
    fn only_an_origin_naming_the_host_written_to_passes() {
        let uri: axum::http::Uri = "/cart/add".parse().expect("uri");
        let same = headers(&[
            ("host", "127.0.0.1:5000"),
            ("origin", "http://127.0.0.1:5000"),
        ]);
        assert_eq!(foreign_origin(&same, &uri), None);
        assert_eq!(
            foreign_origin(&headers(&[("host", "127.0.0.1:5000")]), &uri),
            None
        );
        for origin in ["http://127.0.0.1:5001", "http://evil.example", "null"] {
            let other = headers(&[("host", "127.0.0.1:5000"), ("origin", origin)]);
            assert!(foreign_origin(&other, &uri).is_some(), "{origin}");
        }
    }

    #[test]
    fn json_means_application_json_and_a_body_is_said_by_length_or_type() {
        assert!(is_json(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(!is_json(&headers(&[("content-type", "text/plain")])));
        assert!(!has_body(&headers(&[("content-length", "0")])));
        assert!(has_body(&headers(&[("content-length", "2")])));
        assert!(has_body(&headers(&[("content-type", "text/plain")])));
        assert!(!has_body(&HeaderMap::new()));
    }
}
