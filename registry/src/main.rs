//! The `beacon-registry` command.

#![forbid(unsafe_code)]

use beacon_registry::server::{self, Options};
use clap::{Parser, ValueEnum};
use std::{io::IsTerminal, net::SocketAddr, process::ExitCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Tracks heartbeating service instances and answers who is alive.
#[derive(Debug, Parser)]
#[command(name = "beacon-registry", version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "BEACON_LISTEN", default_value = "127.0.0.1:8400")]
    listen: SocketAddr,

    /// Bearer token that every write (PUT/DELETE) must carry. Reads stay open.
    #[arg(long, env = "BEACON_TOKEN", hide_env_values = true, value_parser = non_empty)]
    token: Option<String>,

    /// Where registrations are kept.
    #[arg(long, env = "BEACON_STORE", value_enum, default_value_t = StoreKind::Memory)]
    store: StoreKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// In this process's memory: fast, lost on restart (instances re-register).
    Memory,
}

fn non_empty(raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        Err("the token must not be empty".into())
    } else {
        Ok(raw.to_owned())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();

    let listener = match TcpListener::bind(cli.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("beacon-registry: cannot listen on {}: {err}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let StoreKind::Memory = cli.store;
    let options = Options { token: cli.token };
    match server::run(listener, options, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("beacon-registry: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!("cannot watch for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT: shutting down"),
        _ = terminate => tracing::info!("SIGTERM: shutting down"),
    }
    shutdown.cancel();
}
