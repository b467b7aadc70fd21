//! Serving, registered, until told to stop.

use crate::http::{router, Ratings};
use beacon::{
    wire::{Address, Registration, ServiceName, DC, ZONE},
    RegistryClient, SharedLease,
};
use beacon_kit::tls;
use std::{io, sync::Arc, time::Duration};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The service name every ratings instance registers under.
pub const SERVICE: &str = "ratings";

/// How to run one ratings instance.
#[derive(Debug)]
pub struct Options {
    /// Where to register.
    pub registry: RegistryClient,
    /// The lease length.
    pub ttl: Duration,
    /// Serve HTTPS with this configuration (and register an `https://`
    /// address); `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The zone to register in (`zone` metadata), if any.
    pub zone: Option<String>,
    /// The site it runs in (`dc` metadata), if named.
    pub dc: Option<String>,
}

/// Serves `ratings` on `listener`, registered under its instance id, until
/// `shutdown` fires; then deregisters *first* (so callers stop choosing this
/// instance), drains in-flight requests, and returns.
pub async fn run(
    listener: TcpListener,
    ratings: Ratings,
    options: Options,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let scheme = tls::scheme(options.tls.as_ref());
    let address = Address::new(&format!("{scheme}://{local}"))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let service: ServiceName = SERVICE
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let id = ratings.instance.clone();
    let mut registration = Registration {
        ttl: options.ttl,
        ..Registration::new(address)
    };
    if let Some(zone) = options.zone {
        registration.metadata.insert(ZONE.to_owned(), zone);
    }
    if let Some(dc) = options.dc {
        registration.metadata.insert(DC.to_owned(), dc);
    }
    // The process's one registry lease, which its instance lives on: one
    // keepalive per `ttl / 3`, however many instances a process serves.
    let shared = SharedLease::start(options.registry.clone(), options.ttl);
    let lease = shared.register(service, id.clone(), registration);
    tracing::info!(instance = %id, "listening on {scheme}://{local}");
    let app = router(Arc::new(ratings));
    let deregister_then_drain = async move {
        shutdown.cancelled().await;
        // The instance first (callers stop choosing it), then the lease.
        let deregistered = lease.shutdown().await;
        let ended = shared.shutdown().await;
        match deregistered.and(ended) {
            Ok(()) => tracing::info!(instance = %id, "deregistered; draining"),
            Err(e) => tracing::warn!(instance = %id, "could not deregister: {e}"),
        }
    };
    tls::serve(listener, options.tls, app, deregister_then_drain).await?;
    tracing::info!("stopped");
    Ok(())
}
