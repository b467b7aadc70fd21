//! The part that talks to one instance: any `tower::Service` that takes an
//! absolute request and gives back a whole answer.
//!
//! [`HttpTransport`] is the real one (hyper-util's pooled client). Tests and
//! users can put any service there — an in-memory one answers on tokio's
//! paused clock, so breaker, balancer and retry behaviour can be checked
//! without sockets or real time.

use super::error::Cause;
use crate::transport::{http_client_with, read_body, HttpClient};
use crate::wire::tls::rustls;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

/// How an exchange with an instance failed before a whole answer came.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExchangeError {
    /// No connection could be made.
    #[error("cannot connect")]
    Connect(#[source] Cause),
    /// The connection failed mid-exchange, or the answer was unreadable.
    #[error("exchange failed")]
    Broken(#[source] Cause),
}

/// What a transport must be: absolute request in, whole answer out.
/// Cloned per attempt, so keep clones cheap (share state behind an `Arc`),
/// and called without a `poll_ready` of its own: like a connection pool, a
/// transport is always ready (readiness is the breakers' business).
pub trait Transport:
    tower::Service<
        Request<Bytes>,
        Response = Response<Bytes>,
        Error = ExchangeError,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> Transport for T
where
    T: tower::Service<Request<Bytes>, Response = Response<Bytes>, Error = ExchangeError>,
    T: Clone + Send + Sync + 'static,
    T::Future: Send + 'static,
{
}

/// HTTP/1.1 over hyper-util's pooled client, reading each answer whole (up
/// to a limit). Clones share the pool.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: Arc<HttpClient>,
    max_response_bytes: usize,
}

impl HttpTransport {
    /// A transport with its own pool; connecting is bounded by
    /// `connect_timeout`, answers by `max_response_bytes`; `https://`
    /// instances trust Mozilla's roots.
    pub fn new(connect_timeout: Duration, max_response_bytes: usize) -> Self {
        Self::with_tls(
            connect_timeout,
            max_response_bytes,
            crate::wire::tls::default_config(),
        )
    }

    /// The same, `https://` instances reached with `tls` (your roots, a
    /// client certificate): see [`ClientTls`](crate::wire::tls::ClientTls).
    pub fn with_tls(
        connect_timeout: Duration,
        max_response_bytes: usize,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self::over(http_client_with(connect_timeout, tls), max_response_bytes)
    }

    /// A transport over `client` (e.g. [`http2_client`] for instances that
    /// speak HTTP/2 without TLS), reading answers up to `max_response_bytes`.
    ///
    /// [`http2_client`]: crate::transport::http2_client
    pub fn over(client: HttpClient, max_response_bytes: usize) -> Self {
        Self {
            client: Arc::new(client),
            max_response_bytes,
        }
    }
}

impl tower::Service<Request<Bytes>> for HttpTransport {
    type Response = Response<Bytes>;
    type Error = ExchangeError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, ExchangeError>> + Send>>;

    /// The pool makes connections as needed: always ready.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExchangeError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let (client, limit) = (Arc::clone(&self.client), self.max_response_bytes);
        Box::pin(async move {
            let response = client.request(request.map(Full::new)).await.map_err(|e| {
                if e.is_connect() {
                    ExchangeError::Connect(Arc::new(e))
                } else {
                    ExchangeError::Broken(Arc::new(e))
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = read_body(body, limit)
                .await
                .map_err(|e| ExchangeError::Broken(Arc::new(e)))?;
            Ok(Response::from_parts(parts, body))
        })
    }
}
