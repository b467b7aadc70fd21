//! The part that talks to one instance: any `tower::Service` that takes an
//! absolute request and gives back the answer, its body streaming.
//!
//! [`HttpTransport`] is the real one (hyper's connections, pooled per
//! instance). Tests and users can put any service there — an in-memory one
//! answers on tokio's paused clock, so breaker, balancer and retry
//! behaviour can be checked without sockets or real time.

use super::body::{RequestBody, RequestBodyError, ResponseBody};
use super::error::Cause;
use super::identity::IdentityMismatch;
use super::pool::Pools;
use crate::net::http::{connector, Connector};
use crate::net::tls::rustls;
use http::{Request, Response};
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
    /// The instance's certificate does not name the service it was
    /// resolved for (see [`HttpTransportBuilder::expect_identity`]).
    #[error(transparent)]
    Identity(IdentityMismatch),
    /// The request's own body failed (see [`RequestBodyError`](super::RequestBodyError)): the
    /// caller's fault, not the instance's.
    #[error("the request body failed")]
    Request(#[source] Cause),
}

impl ExchangeError {
    /// A request that failed on its connection, told apart by what failed:
    /// the request's own body, or the exchange.
    pub(crate) fn sending(error: hyper::Error) -> Self {
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            if cause.is::<RequestBodyError>() {
                return Self::Request(Arc::new(error));
            }
            source = cause.source();
        }
        Self::Broken(Arc::new(error))
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

/// HTTP/1.1 and HTTP/2, plain and TLS, over hyper's connections pooled
/// per instance: a request finds its instance's pool with one lookup and
/// takes the connection used last: about 10,000 instructions fewer per
/// call (measured by `scripts/instructions-per-call.sh`) than hyper-util's
/// pooled client, which keys one shared pool by scheme and authority.
/// Connections idle for 30 s are closed. Clones share the pools.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    pools: Arc<Pools>,
}

impl HttpTransport {
    /// A transport with pools of its own; connecting is bounded by
    /// `connect_timeout`; `https://` instances trust Mozilla's roots.
    pub fn new(connect_timeout: Duration) -> Self {
        Self::with_tls(connect_timeout, crate::net::tls::default_config())
    }

    /// The same, `https://` instances reached with `tls` (your roots, a
    /// client certificate): see [`ClientTls`](crate::net::tls::ClientTls).
    /// HTTP/2 where an instance agrees to it by ALPN, else HTTP/1.1.
    pub fn with_tls(connect_timeout: Duration, tls: Arc<rustls::ClientConfig>) -> Self {
        Self::over(connector(connect_timeout, tls), false, None)
    }

    /// HTTP/2 on every connection, plain `http://` ones too ("prior
    /// knowledge", h2c): only for instances that speak it.
    pub fn http2(connect_timeout: Duration, tls: Arc<rustls::ClientConfig>) -> Self {
        Self::over(connector(connect_timeout, tls), true, None)
    }

    /// Settings for a transport: TLS, connect timeout, HTTP/2.
    pub fn builder() -> HttpTransportBuilder {
        HttpTransportBuilder::default()
    }

    fn over(connector: Connector, http2_only: bool, identity: Option<Arc<str>>) -> Self {
        Self {
            pools: Arc::new(Pools::new(connector, http2_only, identity)),
        }
    }
}

/// How an [`HttpTransport`] reaches instances. A
/// [`ServiceClient::builder`](super::ServiceClient::builder) starts from
/// the TLS its resolver was given, so TLS is given once.
#[derive(Debug, Clone)]
pub struct HttpTransportBuilder {
    connect_timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
    http2_prior_knowledge: bool,
    /// The service every instance's certificate must name.
    identity: Option<Arc<str>>,
}

impl Default for HttpTransportBuilder {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(300),
            tls: None,
            http2_prior_knowledge: false,
            identity: None,
        }
    }
}

impl HttpTransportBuilder {
    /// Bound on the TCP handshake (and TLS's). Default is 300 ms.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// TLS for `https://` instances: your roots besides Mozilla's, a client
    /// certificate for mutual TLS — see
    /// [`ClientTls`](crate::net::tls::ClientTls). Default is `None`:
    /// Mozilla's roots only.
    pub fn tls(mut self, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        self.tls = tls;
        self
    }

    /// Speak HTTP/2 to plain `http://` instances too, without asking
    /// ("prior knowledge", h2c): only for instances that serve it. Over
    /// TLS, HTTP/2 is negotiated anyway. Default is `false`.
    pub fn http2_prior_knowledge(mut self, on: bool) -> Self {
        self.http2_prior_knowledge = on;
        self
    }

    /// Reach only instances that prove they are `service`: each new
    /// connection must be TLS, with a server certificate naming it (a URI
    /// SAN `spiffe://beacon/service/<service>` or a DNS SAN `<service>`),
    /// else the exchange fails with [`ExchangeError::Identity`] and no
    /// request is sent on it. Checked once per connection. Default is
    /// `None`: any certificate the roots trust. A
    /// [`ServiceClient`](super::ServiceClient) sets it from
    /// [`verify_identity`](super::ServiceClientBuilder::verify_identity).
    pub fn expect_identity(mut self, service: Option<&str>) -> Self {
        self.identity = service.map(Arc::from);
        self
    }

    /// The transport.
    pub fn build(self) -> HttpTransport {
        let tls = self.tls.unwrap_or_else(crate::net::tls::default_config);
        HttpTransport::over(
            connector(self.connect_timeout, tls),
            self.http2_prior_knowledge,
            self.identity,
        )
    }
}

impl tower::Service<Request<RequestBody>> for HttpTransport {
    type Response = Response<ResponseBody>;
    type Error = ExchangeError;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, ExchangeError>> + Send>>;

    /// The pools make connections as needed: always ready.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExchangeError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let pools = Arc::clone(&self.pools);
        Box::pin(async move {
            let response = pools.send(request).await?;
            Ok(response.map(ResponseBody::from))
        })
    }
}
