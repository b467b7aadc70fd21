//! Connections to instances, pooled per instance: what
//! [`HttpTransport`](super::HttpTransport) sends over.
//!
//! Why not hyper-util's pooled client, which the rest of Beacon uses: it
//! keeps every host's connections in one map behind one lock, keyed by
//! scheme and authority, and per request it hashes that key (byte by byte)
//! several times, allocates a checkout, and formats a `Host` header. Under
//! `callgrind` that is about 11,600 instructions a request: a call on
//! loopback takes 30,300, of which hyper's own connection takes 18,700.
//! Here a request finds its instance's pool with one hash of the authority
//! under a read lock, takes a connection from that pool's stack, and gets a
//! `Host` header made once per instance; hyper's HTTP/1 and HTTP/2
//! connections do the rest, as they did under hyper-util.
//!
//! What is kept of hyper-util's behaviour:
//! - HTTP/1.1 connections are reused once their last answer is read (most
//!   recently used first), and those that sat idle past [`IDLE_TIMEOUT`]
//!   are closed when a connection is put back. (hyper-util spawns a task per answer whose body is not read by
//!   the time its headers are, to put the connection back later; here it
//!   goes back at once and is passed over until it is ready.)
//! - An instance that speaks HTTP/2 (by ALPN over TLS, or by prior
//!   knowledge) gets one connection, shared by every request to it, made
//!   by one request while the others wait. (No HTTP/2 pings: they cost
//!   1,500 instructions a call, and the connector's TCP keep-alive and
//!   user timeout find a peer gone silent within about a minute.)
//! - A request a reused connection turned away unsent (the instance closed
//!   it as the request went out) is sent again, on another connection:
//!   nothing reached the instance, so this is safe for any method.
//! - HTTP/1 requests go in origin form, with a `Host` header unless the
//!   caller set one.

use super::{body::RequestBody, ExchangeError};
use crate::net::http::{Connector, IDLE_TIMEOUT};
use http::{header::HOST, uri::PathAndQuery, HeaderValue, Request, Response, Uri};
use hyper::{
    body::Incoming,
    client::conn::{http1, http2},
};
use hyper_util::{client::legacy::connect::Connection as _, rt::TokioTimer};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, RwLock},
};
use tokio::time::Instant;
use tower::ServiceExt;

/// Tries at sending one request: a reused connection may turn it away
/// unsent, and then another is tried; the last try is on a new connection.
const TRIES: usize = 3;

/// Every instance's pool, by scheme and authority.
#[derive(Debug)]
pub(crate) struct Pools {
    connector: Connector,
    /// HTTP/2 on every connection, plain ones too ("prior knowledge").
    http2_only: bool,
    /// The service each instance must prove it is, once per connection
    /// (see [`super::identity`]).
    identity: Option<Arc<str>>,
    /// `http://` instances, by authority.
    plain: RwLock<ByAuthority>,
    /// `https://` instances, by authority.
    tls: RwLock<ByAuthority>,
}

/// Pools by authority, hashed with foldhash, seeded per process: looked up
/// once per request, where std's SipHash cost about 200 instructions a
/// call. foldhash is only minimally resistant to keys chosen to collide;
/// the keys here are instances' authorities, as many as there are
/// instances, and a host with nothing open is forgotten.
type ByAuthority = HashMap<Box<str>, Arc<HostPool>, foldhash::fast::RandomState>;

/// One instance's connections.
#[derive(Debug)]
struct HostPool {
    /// The `Host` header of HTTP/1 requests to it.
    host: Option<HeaderValue>,
    state: Mutex<HostState>,
    /// Held while an HTTP/2 connection is made (see [`Pools::connect`]).
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct HostState {
    /// HTTP/1.1 connections ready for a request, the most recently used
    /// last (taken first: warm, and the old ones at the bottom expire).
    idle: Vec<Idle>,
    /// The instance's HTTP/2 connection, once it has one.
    http2: Option<http2::SendRequest<RequestBody>>,
    /// It agreed to HTTP/2 once: new connections are made one at a time.
    speaks_http2: bool,
}

impl HostState {
    /// Closes the HTTP/1.1 connections idle past [`IDLE_TIMEOUT`]: the
    /// oldest, at the bottom (each goes on top when put back). They are
    /// stamped when their answer's headers came, so one whose answer
    /// streamed for longer than that is closed once it is free.
    fn close_expired(&mut self, now: Instant) {
        let expired = self
            .idle
            .partition_point(|idle| now.saturating_duration_since(idle.since) > IDLE_TIMEOUT);
        self.idle.drain(..expired);
    }
}

#[derive(Debug)]
struct Idle {
    send: http1::SendRequest<RequestBody>,
    since: Instant,
}

/// A connection a request goes out on.
enum Connection {
    Http1(http1::SendRequest<RequestBody>),
    Http2(http2::SendRequest<RequestBody>),
}

/// A request whose URI has no authority: there is nowhere to send it.
#[derive(Debug, thiserror::Error)]
#[error("the request URI {0} names no instance (scheme and authority)")]
struct NoAuthority(Uri);

impl Pools {
    /// Pools whose connections `connector` opens.
    pub(crate) fn new(connector: Connector, http2_only: bool, identity: Option<Arc<str>>) -> Self {
        Self {
            connector,
            http2_only,
            identity,
            plain: RwLock::default(),
            tls: RwLock::default(),
        }
    }

    /// Sends `request` (absolute URI) to its instance, on a pooled
    /// connection or a new one; the answer comes with its headers, its body
    /// streaming.
    pub(crate) async fn send(
        self: Arc<Self>,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, ExchangeError> {
        let host = self.host(request.uri())?;
        let mut tries_left = TRIES;
        loop {
            tries_left -= 1;
            // The last try is on a new connection, which ends the loop: a
            // new connection's refusal is an error.
            let may_reuse = tries_left > 0;
            let pooled = may_reuse.then(|| host.checkout()).flatten();
            let (connection, reused) = match pooled {
                Some(connection) => (connection, true),
                // Boxed: connecting (TCP, TLS, the handshake) is a large
                // future that nearly every request skips, and in line it
                // would be copied with each request's future.
                None => Box::pin(self.connect(&host, request.uri(), may_reuse)).await?,
            };
            // For HTTP/1, the absolute URI taken out of the request (which
            // goes in origin form), and whether `Host` was added: an unsent
            // request gets both undone.
            let mut changed: Option<(Uri, bool)> = None;
            let mut refused = match connection {
                Connection::Http1(mut send) => {
                    let origin = origin_form(request.uri());
                    let absolute = std::mem::replace(request.uri_mut(), origin);
                    let added_host = match (&host.host, request.headers().contains_key(HOST)) {
                        (Some(host), false) => {
                            request.headers_mut().insert(HOST, host.clone());
                            true
                        }
                        _ => false,
                    };
                    changed = Some((absolute, added_host));
                    match send.try_send_request(request).await {
                        Ok(response) => {
                            host.check_in(send);
                            return Ok(response);
                        }
                        Err(refused) => refused,
                    }
                }
                Connection::Http2(mut send) => match send.try_send_request(request).await {
                    Ok(response) => return Ok(response),
                    Err(refused) => refused,
                },
            };
            match refused.take_message() {
                Some(unsent) if reused => {
                    // As it came: the next try may be on HTTP/2.
                    request = unsent;
                    if let Some((absolute, added_host)) = changed {
                        *request.uri_mut() = absolute;
                        if added_host {
                            request.headers_mut().remove(HOST);
                        }
                    }
                }
                _ => return Err(ExchangeError::sending(refused.into_error())),
            }
        }
    }

    /// The pool of the instance `uri` names, made on first use. A new
    /// instance first clears out those with nothing left open (instances
    /// gone, ports not to be seen again), so the map stays as large as the
    /// set of live instances.
    fn host(&self, uri: &Uri) -> Result<Arc<HostPool>, ExchangeError> {
        let authority = uri
            .authority()
            .ok_or_else(|| ExchangeError::Connect(Arc::new(NoAuthority(uri.clone()))))?;
        let hosts = match uri.scheme_str() {
            Some("https") => &self.tls,
            _ => &self.plain,
        };
        if let Some(pool) = read(hosts).get(authority.as_str()) {
            return Ok(Arc::clone(pool));
        }
        let mut hosts = hosts.write().unwrap_or_else(PoisonError::into_inner);
        hosts.retain(|_, pool| Arc::strong_count(pool) > 1 || pool.is_open());
        let pool = hosts.entry(authority.as_str().into()).or_insert_with(|| {
            Arc::new(HostPool {
                host: host_header(uri),
                state: Mutex::default(),
                connecting: tokio::sync::Mutex::new(()),
            })
        });
        Ok(Arc::clone(pool))
    }

    /// A new connection to the instance at `uri`: HTTP/2 if it was agreed
    /// by ALPN or is configured, else HTTP/1.1. Its driving task is spawned;
    /// an HTTP/2 one is kept for the instance's later requests. To an
    /// instance known to speak HTTP/2, one request connects at a time and
    /// the others wait for its connection (when `may_reuse`; it comes back
    /// marked as reused), as hyper-util does, rather than each opening one.
    async fn connect(
        &self,
        host: &HostPool,
        uri: &Uri,
        may_reuse: bool,
    ) -> Result<(Connection, bool), ExchangeError> {
        let _one_at_a_time = match self.http2_only || host.lock().speaks_http2 {
            true => Some(host.connecting.lock().await),
            false => None,
        };
        if let Some(shared) = may_reuse.then(|| host.checkout()).flatten() {
            return Ok((shared, true));
        }
        let connect =
            |e: Box<dyn std::error::Error + Send + Sync>| ExchangeError::Connect(e.into());
        let io = self
            .connector
            .clone()
            .oneshot(uri.clone())
            .await
            .map_err(connect)?;
        if let Some(service) = &self.identity {
            super::identity::check(&io, service).map_err(ExchangeError::Identity)?;
        }
        if self.http2_only || io.connected().is_negotiated_h2() {
            let (send, connection) = http2::Builder::new(BoxedSpawn)
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|e| connect(e.into()))?;
            tokio::spawn(connection);
            let mut state = host.lock();
            state.http2 = Some(send.clone());
            state.speaks_http2 = true;
            return Ok((Connection::Http2(send), false));
        }
        let (send, connection) = http1::handshake(io).await.map_err(|e| connect(e.into()))?;
        tokio::spawn(connection.with_upgrades());
        Ok((Connection::Http1(send), false))
    }
}

/// Spawns the tasks of hyper's HTTP/2 connections boxed. hyper spawns one
/// per request, and its type is an enum whose largest variant is the whole
/// connection: spawned as it is, every request's task would be that large
/// and copied whole (about 2,700 instructions a call); boxed, it moves as a
/// pointer. hyper-util's executor boxes them too.
#[derive(Debug, Clone, Copy)]
struct BoxedSpawn;

impl<F> hyper::rt::Executor<F> for BoxedSpawn
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(Box::pin(future));
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

impl HostPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, HostState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection ready for a request, if the pool has one: the HTTP/2
    /// one while it is open, else the most recently used HTTP/1.1 one that
    /// is ready (one still reading its last answer is left for later; one
    /// closed meanwhile is dropped).
    fn checkout(&self) -> Option<Connection> {
        let mut state = self.lock();
        if let Some(send) = &state.http2 {
            if !send.is_closed() {
                return Some(Connection::Http2(send.clone()));
            }
            state.http2 = None;
        }
        state.close_expired(Instant::now());
        let mut at = state.idle.len();
        while at > 0 {
            at -= 1;
            let send = &state.idle[at].send;
            if send.is_ready() {
                return Some(Connection::Http1(state.idle.remove(at).send));
            }
            if send.is_closed() {
                state.idle.remove(at);
            }
        }
        None
    }

    /// Puts an HTTP/1.1 connection back after its answer's headers came. It
    /// takes another request once that answer is all read, which its own
    /// task sees to (at once for a small body, which comes with its
    /// headers): until then [`checkout`](Self::checkout) passes it over.
    fn check_in(&self, send: http1::SendRequest<RequestBody>) {
        if send.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        state.close_expired(now);
        state.idle.push(Idle { send, since: now });
    }

    /// Whether any of its connections is still open and not expired.
    fn is_open(&self) -> bool {
        let mut state = self.lock();
        state.close_expired(Instant::now());
        state.http2.as_ref().is_some_and(|send| !send.is_closed())
            || state.idle.iter().any(|idle| !idle.send.is_closed())
    }
}

/// The origin form of `uri` (path and query only), what HTTP/1 sends.
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(path) if path.as_str() != "/" => {
            let mut parts = http::uri::Parts::default();
            parts.path_and_query = Some(path.clone());
            Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
        }
        _ => Uri::from(PathAndQuery::from_static("/")),
    }
}

/// The `Host` header for HTTP/1 requests to `base`: its authority, without a port
/// that is the scheme's default (what hyper-util writes for HTTP/1 when a
/// request has none, by formatting the URI's parts on every request).
fn host_header(base: &Uri) -> Option<HeaderValue> {
    let host = base.host()?;
    let default_port = match base.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let value = match base.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An HTTP/1 connection over an in-memory pipe whose other end nobody
    /// reads: enough for the pool, which only asks whether it is ready.
    async fn connection() -> (http1::SendRequest<RequestBody>, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1024);
        let (mut send, connection) = http1::handshake(hyper_util::rt::TokioIo::new(ours))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        send.ready().await.expect("ready");
        (send, theirs)
    }

    fn pool() -> HostPool {
        HostPool {
            host: None,
            state: Mutex::default(),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_connection_used_last_goes_first_and_those_idle_too_long_are_closed() {
        let pool = pool();
        let (old, _old_peer) = connection().await;
        pool.check_in(old);
        tokio::time::advance(IDLE_TIMEOUT - Duration::from_secs(1)).await;
        let (recent, _recent_peer) = connection().await;
        pool.check_in(recent);
        assert!(matches!(pool.checkout(), Some(Connection::Http1(_))));
        assert!(pool.is_open(), "the older one is not expired yet");
        // The older one, left in the pool, passes its idle timeout.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!pool.is_open(), "it idled too long");
        assert!(pool.checkout().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_closed_by_its_peer_is_passed_over() {
        let pool = pool();
        let (send, peer) = connection().await;
        pool.check_in(send);
        drop(peer);
        // Its task sees the end of the stream and closes it.
        for turn in 0.. {
            if !pool.is_open() {
                break;
            }
            assert!(turn < 1_000, "the connection never closed");
            tokio::task::yield_now().await;
        }
        assert!(pool.checkout().is_none());
    }

    #[test]
    fn the_host_header_is_the_authority_without_a_default_port() {
        let host = |base: &str| {
            host_header(&base.parse().expect("uri")).map(|v| v.to_str().expect("ascii").to_owned())
        };
        assert_eq!(
            host("http://127.0.0.1:8001").as_deref(),
            Some("127.0.0.1:8001")
        );
        assert_eq!(
            host("http://ratings.local:80/base").as_deref(),
            Some("ratings.local")
        );
        assert_eq!(host("https://r.example:443").as_deref(), Some("r.example"));
        assert_eq!(
            host("https://r.example:8443").as_deref(),
            Some("r.example:8443")
        );
        assert_eq!(host("http://[::1]:8001").as_deref(), Some("[::1]:8001"));
        assert_eq!(host("/no/authority"), None);
    }
}
