//! The pooled HTTP(S) client every part of Beacon sends through (plain or
//! TLS by the URL's scheme; HTTP/2 where TLS negotiates it, or by prior
//! knowledge), the connector Beacon's per-instance pools share, the one
//! bounded body read, and errors told with their causes.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use std::{sync::Arc, time::Duration};

/// hyper-util's pooled client over TCP, `https://` URLs over rustls,
/// sending request bodies of type `B`: whole buffers by default (the
/// registry's JSON, health checks), streams where a caller needs them.
pub type HttpClient<B = Full<Bytes>> = Client<Connector, B>;

/// A pooled client trusting Mozilla's roots (see [`crate::tls`]).
/// `connect_timeout` bounds the TCP handshake, so that a host that drops
/// SYNs costs that much and no more.
pub fn http_client(connect_timeout: Duration) -> HttpClient {
    http_client_with(connect_timeout, crate::tls::default_config())
}

/// A pooled client whose `https://` connections use `tls` (trusted roots,
/// client certificate): make one with [`crate::tls::ClientTls::config`].
/// Over TLS it offers HTTP/2 and HTTP/1.1 by ALPN, and speaks HTTP/2 where
/// the server takes it: calls to that server share one connection. (The
/// protocol is known only once a handshake is done, so a first burst of
/// concurrent calls to a new server may still open a connection each.)
/// Plain `http://` is HTTP/1.1.
pub fn http_client_with<B: SendableBody>(
    connect_timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
) -> HttpClient<B> {
    build(connect_timeout, tls, false)
}

/// Like [`http_client_with`], but HTTP/2 on every connection, plain ones
/// included ("prior knowledge", h2c): only for servers that speak it.
pub fn http2_client<B: SendableBody>(
    connect_timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
) -> HttpClient<B> {
    build(connect_timeout, tls, true)
}

/// What hyper needs of a request body to send it on a pooled connection.
pub trait SendableBody:
    http_body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + Unpin
    + 'static
{
}

impl<B> SendableBody for B where
    B: http_body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Unpin
        + 'static
{
}

/// How long a pooled connection may sit unused before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle time before TCP keep-alive probes start on a connection.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// What opens connections: TCP (no Nagle, `connect_timeout` on the
/// handshake), then rustls with `tls` for `https://` URLs, offering HTTP/2
/// and HTTP/1.1 by ALPN. Shared by the pooled clients here and by the
/// per-instance pools of Beacon's service client.
pub type Connector = HttpsConnector<HttpConnector>;

/// What a [`Connector`] connects: plain TCP, or TLS over it (whose session
/// says what the server's certificate is).
pub use hyper_rustls::MaybeHttpsStream;

/// A [`Connector`] bounded by `connect_timeout`, with `tls` for `https://`.
pub fn connector(connect_timeout: Duration, tls: Arc<rustls::ClientConfig>) -> Connector {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.set_nodelay(true);
    // A pooled connection to a peer gone silent (no FIN, no RST) is found
    // out by the kernel in about a minute rather than hours: when idle, by
    // keep-alive probes (30 s idle, then 3 probes 10 s apart); with data
    // unacknowledged, by the user timeout.
    tcp.set_keepalive(Some(TCP_KEEPALIVE));
    tcp.set_keepalive_interval(Some(Duration::from_secs(10)));
    tcp.set_keepalive_retries(Some(3));
    #[cfg(target_os = "linux")]
    tcp.set_tcp_user_timeout(Some(Duration::from_secs(60)));
    tcp.enforce_http(false);
    HttpsConnectorBuilder::new()
        .with_tls_config(Arc::unwrap_or_clone(tls))
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(tcp)
}

fn build<B: SendableBody>(
    connect_timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    http2_only: bool,
) -> HttpClient<B> {
    let connector = connector(connect_timeout, tls);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .http2_only(http2_only)
        .build(connector)
}

/// Why a response body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Longer than the limit.
    #[error("response body is larger than {0} bytes")]
    TooLarge(usize),
    /// The connection failed mid-body.
    #[error("reading the response body failed")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Err(err) => Err(BodyError::Read(err)),
    }
}

/// An error with its causes, e.g. "cannot connect to http://127.0.0.1:8002:
/// client error (Connect): tcp connect error: Connection refused": what a
/// person (a log line, a dashboard's last error) should read.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    use std::fmt::Write as _;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}
