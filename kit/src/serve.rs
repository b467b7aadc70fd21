//! Serving an axum app with the limits every server here needs against
//! floods: a connection must send a request's headers within
//! [`HEADER_READ_TIMEOUT`] (a slowloris, or a keep-alive connection left
//! idle, is closed then), and at most [`max_connections`] are open at once
//! (below the process's file-descriptor limit, so the server always has
//! descriptors for its own work and for the connections it serves). When
//! every slot is taken, the oldest connection with no request in hand (a
//! slowloris, an idle keep-alive) is closed to make room, so a flood at
//! the cap does not keep a new caller — `/_health` — waiting out the header
//! timeout. On shutdown, idle connections close at once and busy ones
//! finish.
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
use std::{
    collections::VecDeque,
    future::Future,
    io,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{sync::Semaphore, task::AbortHandle};
use tower::ServiceExt as _;

/// How long a connection may take to send a request's headers, counted
/// from when the server starts reading them (so also how long a
/// keep-alive connection may sit idle between requests).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The open connections, oldest first, with how many requests each has
/// in hand (ended ones are swept out now and then).
struct OpenConnections {
    open: VecDeque<(AbortHandle, Arc<AtomicUsize>)>,
    /// The cap on open connections: past twice as many entries, the ended
    /// ones are swept, so keeping track costs O(1) a connection.
    limit: usize,
}

impl OpenConnections {
    fn new(limit: usize) -> Self {
        Self {
            open: VecDeque::new(),
            limit,
        }
    }

    fn push(&mut self, task: AbortHandle, busy: Arc<AtomicUsize>) {
        if self.open.len() >= self.limit.saturating_mul(2) {
            self.open.retain(|(task, _)| !task.is_finished());
        }
        self.open.push_back((task, busy));
    }

    /// Closes the oldest connection with no request in hand, if there is
    /// one: its task ends, and its slot is free. (A connection whose
    /// answer is streaming counts as idle: its client reconnects.)
    fn close_oldest_idle(&mut self) {
        self.open.retain(|(task, _)| !task.is_finished());
        let idle = self
            .open
            .iter()
            .position(|(_, busy)| busy.load(Ordering::Relaxed) == 0);
        if let Some((task, _)) = idle.and_then(|at| self.open.remove(at)) {
            tracing::debug!("every connection slot taken: closing the oldest idle connection");
            task.abort();
        }
    }
}

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
    let mut open = OpenConnections::new(max_connections);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        if slots.available_permits() == 0 {
            open.close_oldest_idle();
        }
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
        let busy = Arc::new(AtomicUsize::new(0));
        let (started, ended) = (Arc::clone(&busy), Arc::clone(&busy));
        let service = app
            .clone()
            .map_request(move |request: Request<Incoming>| {
                started.fetch_add(1, Ordering::Relaxed);
                let mut request = request.map(Body::new);
                if let Some(peer) = &peer {
                    request.extensions_mut().insert(peer.clone());
                }
                request
            })
            .map_response(move |response| {
                ended.fetch_sub(1, Ordering::Relaxed);
                response
            });
        let builder = Arc::clone(&builder);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        let task = tokio::spawn(async move {
            // A connection's end (closed, timed out, reset) is routine.
            let _ = connection.await;
            drop(slot);
        });
        open.push(task.abort_handle(), busy);
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// At the cap, with every slot held by a connection that sends nothing,
    /// a new caller is answered at once: the oldest idle one is closed.
    #[tokio::test]
    async fn a_flood_at_the_cap_does_not_keep_a_new_caller_waiting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let app = Router::new().route("/_health", axum::routing::get(|| async { "ok" }));
        tokio::spawn(serve(listener, app, 4, |_| None, std::future::pending()));
        let mut flood = Vec::new();
        for _ in 0..4 {
            flood.push(
                tokio::net::TcpStream::connect(address)
                    .await
                    .expect("connect"),
            );
        }
        let started = tokio::time::Instant::now();
        let mut caller = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        caller
            .write_all(b"GET /_health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .expect("send");
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), caller.read_to_string(&mut answer))
            .await
            .expect("answered before the header timeout")
            .expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");
        assert!(started.elapsed() < HEADER_READ_TIMEOUT);
        // The oldest of the flood was the one closed.
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), flood[0].read(&mut byte))
            .await
            .expect("closed, not left hanging");
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    }
}
