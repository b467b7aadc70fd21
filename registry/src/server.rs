//! Serving the API: what `main` runs and what tests start in-process.

use crate::{
    http::{router, AppState},
    metrics::Metrics,
    store::{MemoryStore, Store},
};
use std::{io, sync::Arc};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How to run a registry.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Bearer token that writes must carry; `None` leaves writes open.
    pub token: Option<String>,
}

/// Serves the registry with the in-memory store on `listener` until
/// `shutdown` fires, then drains: parked blocking queries answer at once,
/// in-flight requests finish, and the call returns.
pub async fn run(
    listener: TcpListener,
    options: Options,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(MemoryStore::new(Arc::clone(&metrics)));
    serve(listener, store, metrics, options, shutdown).await
}

/// Serves the registry over any [`Store`].
pub async fn serve<S: Store>(
    listener: TcpListener,
    store: Arc<S>,
    metrics: Arc<Metrics>,
    options: Options,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let kind = store.kind();
    let state = AppState {
        store,
        metrics,
        shutdown: shutdown.clone(),
    };
    let app = router(state, options.token.map(Arc::from));
    tracing::info!(
        store = kind,
        "listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    tracing::info!("stopped");
    Ok(())
}
