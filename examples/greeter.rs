//! A whole service side: serve, keep registered, and leave cleanly.
//!
//! Start a registry first (`make registry`), then, in as many shells as you
//! like instances:
//!
//! ```sh
//! cargo run --example greeter -- greeter-1
//! cargo run --example greeter -- greeter-2
//! cargo run --example greet          # the caller: who answered
//! ```
//!
//! The order matters at the end: on Ctrl-C (or SIGTERM) the instance first
//! deregisters, so callers stop choosing it, and only then stops serving,
//! finishing the calls already in flight.

use beacon::{
    wire::{Address, Registration},
    Lease, RegistryClient,
};
use std::{error::Error, time::Duration};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Beacon logs through `tracing`: without a subscriber you see nothing.
    tracing_subscriber::fmt().with_env_filter("info").init();
    let id = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "greeter-1".into());
    let registry_urls =
        std::env::var("BEACON_REGISTRY").unwrap_or_else(|_| "http://127.0.0.1:8400".into());

    // Serve on a free port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = Address::new(&format!("http://{}", listener.local_addr()?))?;
    tracing::info!("{id} listening on {address}");
    let greeting = format!("hello from {id}\n");
    let app = axum::Router::new().route(
        "/hello",
        axum::routing::get(move || async move { greeting }),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    });

    // Keep it registered; say so, or say why not.
    let registry = RegistryClient::from_list(&registry_urls, None)?;
    let lease = Lease::start(
        registry,
        "greeter".parse()?,
        id.parse()?,
        Registration::new(address.clone()),
    );
    if let Err(not_yet) = lease.registered_within(Duration::from_secs(5)).await {
        // The lease keeps trying in the background; the service serves anyway.
        tracing::warn!("{not_yet}; still trying");
    } else {
        tracing::info!("{id} registered at {address}");
    }

    shutdown_signal().await;
    // Deregister first, so callers stop choosing this instance...
    if let Err(e) = lease.shutdown().await {
        tracing::warn!(
            "could not deregister ({e}); the registry drops {id} when its lease runs out"
        );
    }
    // ...then finish the calls in flight and stop.
    stop.cancel();
    server.await??;
    Ok(())
}

/// Ctrl-C, or SIGTERM (what `kill` and container runtimes send).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
