//! One call as it moves through the client's parts: the request, kept so it
//! can be sent again, and what the call has learned so far.

use super::ClientError;
use crate::wire::Address;
use bytes::Bytes;
use http::{uri::PathAndQuery, HeaderMap, Method, Request, Uri, Version};
use std::{sync::Arc, time::Duration};
use tokio::time::Instant;

/// A request that can be replayed on another instance, with the call's
/// state: its deadline, its attempts, the instances it tried.
///
/// `http::Request` can't be cloned (its extensions may hold anything), so a
/// call keeps the parts a retry needs, shared: a replay (and each move of
/// the call between parts) copies a pointer, not the headers.
#[derive(Debug, Clone)]
pub struct Call {
    request: Arc<Replayable>,
    /// When the whole call gives up.
    pub deadline: Instant,
    /// How long the whole call was given (for the error that says so).
    pub allowed: Duration,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// Instances already tried; a retry goes elsewhere. Allocates only once
    /// a retry is needed.
    pub tried: Vec<Address>,
    /// Why the latest attempt failed: the answer when a later attempt can't
    /// be made or is cut short.
    pub last_error: Option<ClientError>,
}

/// What of a request is sent again on a retry; the body is `Bytes`, so it
/// is never copied.
#[derive(Debug)]
struct Replayable {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
}

impl Call {
    /// A first attempt at `request`, given `allowed` from now.
    pub fn new(request: Request<Bytes>, allowed: Duration) -> Self {
        let (parts, body) = request.into_parts();
        Self {
            request: Arc::new(Replayable {
                method: parts.method,
                uri: parts.uri,
                version: parts.version,
                headers: parts.headers,
                body,
            }),
            deadline: Instant::now() + allowed,
            allowed,
            attempt: 1,
            tried: Vec::new(),
            last_error: None,
        }
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.request.method
    }

    /// Path and query, `/` if the URI has none.
    pub fn path_and_query(&self) -> &str {
        self.request
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
    }

    /// The request to send to the instance at `base` (its address as a
    /// URI, parsed once per instance: see [`Endpoint::uri`]), absolute.
    ///
    /// [`Endpoint::uri`]: crate::endpoint::Endpoint::uri
    pub fn to_request(&self, base: &Uri) -> Result<Request<Bytes>, ClientError> {
        let replay = &*self.request;
        let uri = absolute(base, &replay.uri)?;
        // Field by field rather than through `Request::builder`, whose every
        // step moves the whole head: this runs once per attempt.
        let mut request = Request::new(replay.body.clone());
        *request.method_mut() = replay.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = replay.version;
        *request.headers_mut() = replay.headers.clone();
        Ok(request)
    }

    /// Whether it may be sent twice without harm (RFC 9110 §9.2.2).
    pub fn is_idempotent(&self) -> bool {
        matches!(
            *self.method(),
            Method::GET
                | Method::HEAD
                | Method::PUT
                | Method::DELETE
                | Method::OPTIONS
                | Method::TRACE
        )
    }
}

/// `request`'s path and query at `base` (scheme, authority and any path
/// prefix of an instance's address). Without a prefix, the parts are reused
/// as they are (shared bytes, no formatting, no parsing): this runs once
/// per attempt.
fn absolute(base: &Uri, request: &Uri) -> Result<Uri, ClientError> {
    let invalid = |e: &dyn std::fmt::Display| ClientError::InvalidRequest(e.to_string());
    let path_and_query = request
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let path_and_query = match base.path().trim_end_matches('/') {
        "" => path_and_query,
        prefix => {
            PathAndQuery::try_from(format!("{prefix}{path_and_query}")).map_err(|e| invalid(&e))?
        }
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = base.scheme().cloned();
    parts.authority = base.authority().cloned();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).map_err(|e| invalid(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_to_the_address_with_its_path_prefix_if_any() {
        let get = |uri: &str| {
            Call::new(
                Request::get(uri).body(Bytes::new()).expect("request"),
                Duration::from_secs(1),
            )
        };
        for (base, asked, sent) in [
            (
                "http://127.0.0.1:8001",
                "/ratings/camera?x=1",
                "http://127.0.0.1:8001/ratings/camera?x=1",
            ),
            ("https://r.example:8443/", "/a", "https://r.example:8443/a"),
            (
                "http://127.0.0.1:8001/base",
                "/a?b",
                "http://127.0.0.1:8001/base/a?b",
            ),
            (
                "http://127.0.0.1:8001/base/",
                "/",
                "http://127.0.0.1:8001/base/",
            ),
            (
                "http://127.0.0.1:8001",
                "http://elsewhere:9/p",
                "http://127.0.0.1:8001/p",
            ),
        ] {
            let base: Uri = base.parse().expect("base");
            let request = get(asked).to_request(&base).expect("request");
            assert_eq!(request.uri().to_string(), sent, "{asked} at {base}");
        }
    }
}
