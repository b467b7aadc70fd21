//! The `beacon-ratings` command.

#![forbid(unsafe_code)]

use beacon::{
    wire::{InstanceId, MAX_TTL, MIN_TTL},
    RegistryClient, RegistryClientConfig,
};
use beacon_kit::{cli, logging, net, signal::cancel_on_signal, tls};
use beacon_ratings::{
    faults::Faults,
    http::{FaultsAccess, Ratings},
    server::{self, Options},
};
use clap::Parser;
use std::{
    net::{Ipv4Addr, SocketAddr},
    process::ExitCode,
    time::Duration,
};

/// Serves star ratings and keeps itself registered as `ratings-N`.
#[derive(Debug, Parser)]
#[command(name = "beacon-ratings", version, about)]
struct Cli {
    /// Instance number N: id `ratings-N`, port 8000+N.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=999))]
    instance: u16,

    /// Port to listen on instead of 8000+N (0 picks a free one).
    #[arg(long)]
    port: Option<u16>,

    /// Address to listen on, and to register (callers reach the instance
    /// there).
    #[arg(long, default_value_t = Ipv4Addr::LOCALHOST)]
    host: Ipv4Addr,

    /// Registry URLs, comma-separated, tried in order.
    #[arg(long, env = "BEACON_REGISTRY", default_value = "http://127.0.0.1:8400", value_parser = cli::registry_urls)]
    registry: String,

    /// Bearer token for registry writes; `PUT /_faults` needs it too.
    #[arg(long, env = "BEACON_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Let anyone change this instance's faults (`PUT /_faults`) when it
    /// has no --token; without either, the fault switch is closed (403).
    #[arg(long, env = "BEACON_ALLOW_FAULTS")]
    allow_faults: bool,

    /// Lease length in milliseconds (the process's lease is kept alive every third of it).
    #[arg(long, default_value_t = 15_000, value_parser = ttl_ms)]
    ttl_ms: u64,

    /// Delay added before every rating answer, in milliseconds.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    delay_ms: u64,

    /// The zone this instance runs in, registered as its `zone` metadata:
    /// callers in the same zone prefer it (e.g. `a`, `eu-west-1b`).
    #[arg(long, value_parser = cli::zone)]
    zone: Option<String>,

    /// The site (data center) this instance runs in, registered as its
    /// `dc` metadata (its registry is that site's).
    #[arg(long, env = "BEACON_DC", value_parser = cli::zone)]
    dc: Option<String>,

    /// Percentage of rating requests answered with a 500.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    fail_percent: u8,

    /// Rating requests worked on at once; more wait in a queue (0: no
    /// limit). A fault: it makes the instance full, as `PUT /_faults` can.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    capacity: u32,

    /// For this long after start, answers are 5× slower (a cold instance).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    warmup_ms: u64,

    /// Most rating requests served (or queued) at once; the next is shed
    /// at once with 503 `overloaded` and `Retry-After`.
    #[arg(long, env = "BEACON_MAX_IN_FLIGHT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_in_flight: u32,

    #[command(flatten)]
    serve_tls: tls::ServeTlsArgs,

    #[command(flatten)]
    client_tls: tls::ClientTlsArgs,
}

fn ttl_ms(raw: &str) -> Result<u64, String> {
    let ms: u64 = raw
        .parse()
        .map_err(|_| format!("{raw:?} is not a number of milliseconds"))?;
    let range = MIN_TTL.as_millis()..=MAX_TTL.as_millis();
    if range.contains(&u128::from(ms)) {
        Ok(ms)
    } else {
        Err(format!("must be in {}..={}", range.start(), range.end()))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let id = format!("ratings-{}", cli.instance);
    let port = cli.port.unwrap_or(8000 + cli.instance);
    let (serve_tls, client_tls) = match (cli.serve_tls.config(None), cli.client_tls.config()) {
        (Ok(serve), Ok(client)) => (serve, client),
        (Err(e), _) | (_, Err(e)) => return fail(&e.to_string()),
    };
    let registry_config = RegistryClientConfig {
        tls: Some(client_tls),
        ..RegistryClientConfig::default()
    };
    let (instance, registry) = match (
        InstanceId::new(&id),
        RegistryClient::from_list_with(&cli.registry, cli.token.clone(), registry_config),
    ) {
        (Ok(instance), Ok(registry)) => (instance, registry),
        (Err(e), _) => return fail(&e.to_string()),
        (_, Err(e)) => return fail(&e.to_string()),
    };
    let listener = match net::bind(SocketAddr::from((cli.host, port))).await {
        Ok(listener) => listener,
        Err(err) => return fail(&err),
    };
    let faults = Faults {
        delay: Duration::from_millis(cli.delay_ms),
        fail_percent: cli.fail_percent,
        capacity: cli.capacity,
        warmup: Duration::from_millis(cli.warmup_ms),
    };
    let options = Options {
        registry,
        ttl: Duration::from_millis(cli.ttl_ms),
        tls: serve_tls,
        zone: cli.zone.clone(),
        dc: cli.dc.clone(),
    };
    let shutdown = cancel_on_signal();
    match server::run(
        listener,
        Ratings::new(
            instance,
            faults,
            FaultsAccess::new(cli.token.clone(), cli.allow_faults),
            cli.max_in_flight,
        ),
        options,
        shutdown,
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    cli::fail("beacon-ratings", message)
}
