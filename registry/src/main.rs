//! The `beacon-registry` command.

#![forbid(unsafe_code)]

use beacon_kit::{cli, logging, net, signal::cancel_on_signal};
use beacon_registry::server::{self, Options};
use clap::{Parser, ValueEnum};
use std::{net::SocketAddr, process::ExitCode};

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
    logging::init();
    let listener = match net::bind(cli.listen).await {
        Ok(listener) => listener,
        Err(err) => return cli::fail("beacon-registry", &err),
    };
    let shutdown = cancel_on_signal();
    let StoreKind::Memory = cli.store;
    let options = Options { token: cli.token };
    match server::run(listener, options, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => cli::fail("beacon-registry", &err.to_string()),
    }
}
