//! Serving an axum app with the limits every server here needs against
//! floods: a connection must send a request's headers within
//! [`HEADER_READ_TIMEOUT`] (a slowloris, or a keep-alive connection left
//! idle, is closed then), and at most [`max_connections`] are open at once
//! (below the process's file-descriptor limit, so the server always has
//! descriptors for its own work and for the connections it serves). On
//! shutdown, idle connections close at once and busy ones finish.
//!
//! axum's own `serve` has no header timeout and no cap; this is the same
//! loop (hyper-util's automatic HTTP/1 and HTTP/2 builder, graceful
//! shutdown) with both.

use crate::identity::PeerNames;
use axum::{body::Body, extract::Request, Router};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use std::{future::Future, io, sync::Arc, time::Duration};
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// How long a connection may take to send a request's headers, counted
/// from when the server starts reading them (so also how long a
/// keep-alive connection may sit idle between requests).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once: three quarters of the file-descriptor
/// limit (the rest for the process's own files, sockets and clients),
/// at least 64.
pub fn max_connections() -> usize {
    let limit = fd_limit().unwrap_or(1024);
    (limit / 4 * 3).max(64)
}

/// The soft limit on open files, from `/proc/self/limits`.
fn fd_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Serves `app` on `listener` (plain TCP, or [`TlsListener`]) until
/// `shutdown` completes, then drains. `identify` names each connection's
/// peer (its client certificate's names, over mutual TLS); every request
/// on the connection carries them as an extension.
///
/// [`TlsListener`]: crate::tls::TlsListener
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    max_connections: usize,
    identify: fn(&L::Io) -> Option<PeerNames>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    L: axum::serve::Listener,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HEADER_READ_TIMEOUT)
        .keep_alive_timeout(HEADER_READ_TIMEOUT);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { break };
        let (io, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let peer = identify(&io);
        let service = app.clone().map_request(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            if let Some(peer) = &peer {
                request.extensions_mut().insert(peer.clone());
            }
            request
        });
        let builder = Arc::clone(&builder);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A connection's end (closed, timed out, reset) is routine.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
