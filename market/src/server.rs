//! Wiring the market to the registry and serving it.

use crate::{
    app::{AppState, Guards},
    ratings::RatingsBoard,
    router::router,
    store::Store,
};
use beacon::net::tls::rustls;
use beacon::{
    client::{AdaptiveLimit, Attempts, HttpTransport, Limits, SlowStart},
    wire::{Address, InstanceId, Registration, ServiceName, DC, ZONE},
    BreakerConfig, Lease, RegistryClient, Resolver, ResolverConfig, ServiceClient, SharedLease,
};
use beacon_kit::tls;
use std::{io, sync::Arc, time::Duration};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Where the market keeps its state and how it calls the ratings service.
#[derive(Debug, Clone)]
pub struct Options {
    /// Carts, customers and orders (opened with [`Store::open`]).
    pub store: Store,
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
    /// TLS for calls to `https://` ratings instances (and their health
    /// checks); `None`: Mozilla's roots.
    pub client_tls: Option<Arc<rustls::ClientConfig>>,
    /// Call only ratings instances whose certificate names `ratings`
    /// (see [`ServiceClientBuilder::verify_identity`](beacon::client::ServiceClientBuilder::verify_identity)).
    pub verify_identity: bool,
    /// Serve HTTPS with this configuration; `None`: plain HTTP.
    pub serve_tls: Option<Arc<rustls::ServerConfig>>,
    /// The market's zone: ratings instances in it are preferred.
    pub zone: Option<String>,
    /// The market's site (data center), registered as its `dc`.
    pub dc: Option<String>,
    /// Other sites' registries, by site name: their ratings instances take
    /// the calls this site's can't.
    pub remote_dcs: Vec<(String, RegistryClient)>,
    /// Sessions' keys and support's token.
    pub guards: Guards,
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
    let resolver_config = ResolverConfig {
        breaker,
        tls: options.client_tls.clone(),
        ..ResolverConfig::default()
    };
    let resolver = Resolver::new(options.registry.clone(), resolver_config.clone());
    // Adaptive limits and slow start, which a client must ask for: the
    // panel shows each instance's learned limit, and an instance that comes
    // back warms up before it takes its full share.
    let mut ratings = ServiceClient::builder(&resolver, "ratings")
        .attempts(Attempts::new(options.attempt_timeout))
        .deadline(options.deadline.saturating_sub(RENDER_MARGIN))
        .limits(Limits::default().adaptive(Some(AdaptiveLimit::default())))
        .slow_start(Some(SlowStart::default()))
        .verify_identity(options.verify_identity)
        .http(HttpTransport::builder().tls(options.client_tls.clone()));
    if let Some(zone) = &options.zone {
        ratings = ratings.zone(zone.clone());
    }
    if let Some(dc) = &options.dc {
        ratings = ratings.site(dc.clone());
    }
    // One resolver per remote site, kept as long as the client.
    for (name, registry) in &options.remote_dcs {
        let there = Resolver::new(registry.clone(), resolver_config.clone());
        ratings = ratings.remote_site(name, &there);
    }
    let ratings = ratings
        .build()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let board = RatingsBoard::new(
        ratings.clone(),
        options.deadline.saturating_sub(RENDER_MARGIN),
        options.rating_max_age,
    );
    let deadline_ms = u64::try_from(options.deadline.as_millis()).unwrap_or(u64::MAX);
    let store = options.store.clone();
    let app = Arc::new(AppState::new(
        options.store,
        resolver,
        ratings,
        board,
        deadline_ms,
        shutdown.clone(),
        options.guards,
    ));
    let scheme = tls::scheme(options.serve_tls.as_ref());
    let local = listener.local_addr()?;
    tracing::info!("listening on {scheme}://{local}");
    // The market is discoverable too (`market`, id `market-PORT`), on a
    // lease of the process's own, ended first on shutdown.
    let (shared, lease) = register_self(
        &options.registry,
        &format!("{scheme}://{local}"),
        local.port(),
        [(ZONE, options.zone.as_deref()), (DC, options.dc.as_deref())],
    )?;
    let leave_then_drain = async move {
        shutdown.cancelled().await;
        let left = lease.shutdown().await.and(shared.shutdown().await);
        if let Err(e) = left {
            tracing::warn!("could not deregister the market: {e}");
        }
    };
    tls::serve(listener, options.serve_tls, router(app), leave_then_drain).await?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// How long the market's own registration lives without a keepalive.
const SELF_TTL: Duration = Duration::from_secs(15);

/// Registers this market as `market`/`market-PORT` at `address` with
/// `labels` (metadata: its zone and site, those it has), on a shared
/// lease of the process.
fn register_self(
    registry: &RegistryClient,
    address: &str,
    port: u16,
    labels: [(&str, Option<&str>); 2],
) -> io::Result<(SharedLease, Lease)> {
    let invalid = |e: beacon::wire::WireError| io::Error::new(io::ErrorKind::InvalidInput, e);
    let mut registration = Registration::new(Address::new(address).map_err(invalid)?);
    for (key, value) in labels {
        if let Some(value) = value {
            registration
                .metadata
                .insert(key.to_owned(), value.to_owned());
        }
    }
    let service: ServiceName = "market".parse().map_err(invalid)?;
    let id: InstanceId = format!("market-{port}").parse().map_err(invalid)?;
    let shared = SharedLease::start(registry.clone(), SELF_TTL);
    let lease = shared.register(service, id, registration);
    Ok((shared, lease))
}
