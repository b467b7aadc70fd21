//! Wiring the market to the registry and serving it.

use crate::{
    app::{router, AppState},
    ratings::RatingsBoard,
};
use beacon::{
    BreakerConfig, ClientConfig, RegistryClient, Resolver, ResolverConfig, ServiceClient,
};
use std::{io, sync::Arc, time::Duration};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How the market calls the ratings service.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to resolve `ratings`.
    pub registry: RegistryClient,
    /// Every page (and `/api/things`) answers within this.
    pub deadline: Duration,
    /// Longest wait for one ratings instance: short, so that a paused
    /// instance costs one timeout and the retry elsewhere still lands in time.
    pub attempt_timeout: Duration,
    /// Consecutive failures that open an instance's breaker.
    pub breaker_threshold: u32,
    /// How long a breaker stays open first.
    pub breaker_open: Duration,
    /// Oldest cached rating still shown; past it the rating shows as
    /// `none`, so a page can't pass for healthy on ancient values.
    pub rating_max_age: Duration,
}

/// Leaves this much of the page deadline for rendering and the network.
const RENDER_MARGIN: Duration = Duration::from_millis(50);

/// Serves the market on `listener` until `shutdown` fires.
pub async fn run(
    listener: TcpListener,
    options: Options,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let breaker = BreakerConfig {
        failure_threshold: options.breaker_threshold,
        open_for: options.breaker_open,
        max_open_for: options.breaker_open.saturating_mul(4),
        ..BreakerConfig::default()
    };
    let resolver = Resolver::new(
        options.registry.clone(),
        ResolverConfig {
            breaker,
            ..ResolverConfig::default()
        },
    );
    let client_config = ClientConfig {
        attempt_timeout: options.attempt_timeout,
        deadline: options.deadline.saturating_sub(RENDER_MARGIN),
        ..ClientConfig::default()
    };
    let service = "ratings"
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let ratings = ServiceClient::new(&resolver, &service, client_config);
    let board = RatingsBoard::new(
        ratings.clone(),
        options.deadline.saturating_sub(RENDER_MARGIN),
        options.rating_max_age,
    );
    let deadline_ms = u64::try_from(options.deadline.as_millis()).unwrap_or(u64::MAX);
    let app = Arc::new(AppState::new(
        resolver,
        ratings,
        board,
        deadline_ms,
        shutdown.clone(),
    ));
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    tracing::info!("stopped");
    Ok(())
}
