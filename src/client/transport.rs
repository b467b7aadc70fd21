//! The part that talks to one instance: any `tower::Service` that takes an
//! absolute request and gives back the answer, its body streaming.
//!
//! [`HttpTransport`] is the real one (hyper-util's pooled client). Tests and
//! users can put any service there — an in-memory one answers on tokio's
//! paused clock, so breaker, balancer and retry behaviour can be checked
//! without sockets or real time.

use super::body::{RequestBody, RequestBodyError, ResponseBody};
use super::error::Cause;
use crate::transport::{http_client_with, HttpClient};
use crate::wire::tls::rustls;
use futures_util::FutureExt;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::ResponseFuture;
use std::{
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
    /// The request's own body failed (see [`RequestBodyError`](super::RequestBodyError)): the
    /// caller's fault, not the instance's.
    #[error("the request body failed")]
    Request(#[source] Cause),
}

impl ExchangeError {
    /// A failed exchange, told apart by what failed: the connection, the
    /// request's body, or the exchange on the connection.
    fn of(error: hyper_util::client::legacy::Error) -> Self {
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            if cause.is::<RequestBodyError>() {
                return Self::Request(Arc::new(error));
            }
            source = cause.source();
        }
        if error.is_connect() {
            Self::Connect(Arc::new(error))
        } else {
            Self::Broken(Arc::new(error))
        }
    }
}

/// What a transport must be: absolute request in, answer out as soon as
/// its headers are in (the body streams; the [`Attempt`](super::Attempt)
/// reads it whole when the call wants bytes). Cloned per attempt, so keep
/// clones cheap (share state behind an `Arc`), and called without a
/// `poll_ready` of its own: like a connection pool, a transport is always
/// ready (readiness is the breakers' business).
pub trait Transport:
    tower::Service<
        Request<RequestBody>,
        Response = Response<ResponseBody>,
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
    T: tower::Service<
        Request<RequestBody>,
        Response = Response<ResponseBody>,
        Error = ExchangeError,
    >,
    T: Clone + Send + Sync + 'static,
    T::Future: Send + 'static,
{
}

/// HTTP/1.1 and HTTP/2, plain and TLS, over hyper-util's pooled client.
/// Clones share the pool.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: Arc<HttpClient<RequestBody>>,
}

impl HttpTransport {
    /// A transport with its own pool; connecting is bounded by
    /// `connect_timeout`; `https://` instances trust Mozilla's roots.
    pub fn new(connect_timeout: Duration) -> Self {
        Self::with_tls(connect_timeout, crate::wire::tls::default_config())
    }

    /// The same, `https://` instances reached with `tls` (your roots, a
    /// client certificate): see [`ClientTls`](crate::wire::tls::ClientTls).
    pub fn with_tls(connect_timeout: Duration, tls: Arc<rustls::ClientConfig>) -> Self {
        Self::over(http_client_with(connect_timeout, tls))
    }

    /// A transport over `client` (e.g. [`http2_client`] for instances that
    /// speak HTTP/2 without TLS).
    ///
    /// [`http2_client`]: crate::transport::http2_client
    pub fn over(client: HttpClient<RequestBody>) -> Self {
        Self {
            client: Arc::new(client),
        }
    }
}

impl tower::Service<Request<RequestBody>> for HttpTransport {
    type Response = Response<ResponseBody>;
    type Error = ExchangeError;
    /// Not boxed: hyper-util's future is boxed already, and this runs once
    /// per attempt.
    type Future = futures_util::future::Map<ResponseFuture, AnswerOf>;

    /// The pool makes connections as needed: always ready.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExchangeError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        self.client.request(request).map(answer_of)
    }
}

/// What [`HttpTransport`]'s future maps hyper-util's answer with.
type AnswerOf = fn(
    Result<Response<Incoming>, hyper_util::client::legacy::Error>,
) -> Result<Response<ResponseBody>, ExchangeError>;

fn answer_of(
    answer: Result<Response<Incoming>, hyper_util::client::legacy::Error>,
) -> Result<Response<ResponseBody>, ExchangeError> {
    answer
        .map(|response| response.map(ResponseBody::from))
        .map_err(ExchangeError::of)
}
