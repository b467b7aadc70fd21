//! `beacon-grpc-ratings serve` runs one instance of the gRPC ratings
//! service, registered with Beacon; `beacon-grpc-ratings call` rates things
//! through Beacon, one call a line.

use beacon::{
    net::tls::rustls, wire::InstanceId, ClientConfig, RegistryClient, RegistryClientConfig,
    Resolver, ResolverConfig, ServiceClient,
};
use beacon_grpc_example::{grpc_client, pb::GetRatingRequest, RatingsService, SERVICE};
use beacon_kit::{
    cli, logging, net,
    signal::cancel_on_signal,
    tls::{ClientTlsArgs, ServeTlsArgs},
};
use clap::{Parser, Subcommand};
use std::{
    net::{Ipv4Addr, SocketAddr},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

/// The demo's ratings service over gRPC, through Beacon.
#[derive(Debug, Parser)]
#[command(name = "beacon-grpc-ratings", version)]
struct Cli {
    /// Registry URL(s), comma-separated.
    #[arg(
        long,
        env = "BEACON_REGISTRY",
        default_value = "http://127.0.0.1:8400",
        global = true
    )]
    registry: String,

    #[command(flatten)]
    client_tls: ClientTlsArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve one instance (`grpc-ratings-N`) on 127.0.0.1, registered.
    Serve {
        /// Instance number.
        #[arg(long, default_value_t = 1)]
        instance: u16,
        /// Port; 0 (the default) picks a free one.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Answer every call UNAVAILABLE (an instance shedding load).
        #[arg(long)]
        unavailable: bool,
        #[command(flatten)]
        tls: ServeTlsArgs,
    },
    /// Rate ITEMs through Beacon, COUNT times each, one line per answer;
    /// exits 1 if any call failed.
    Call {
        /// Things to rate.
        #[arg(required = true)]
        items: Vec<String>,
        /// Calls per item.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let tls = match cli.client_tls.config() {
        Ok(tls) => tls,
        Err(e) => return fail(&e.to_string()),
    };
    let registry = RegistryClient::from_list_with(
        &cli.registry,
        None,
        RegistryClientConfig {
            tls: Some(Arc::clone(&tls)),
            ..RegistryClientConfig::default()
        },
    );
    let registry = match registry {
        Ok(registry) => registry,
        Err(e) => return fail(&e.to_string()),
    };
    match cli.command {
        Command::Serve {
            instance,
            port,
            unavailable,
            tls: serve_tls,
        } => serve(registry, (instance, unavailable), port, serve_tls).await,
        Command::Call { items, count } => call(registry, tls, &items, count).await,
    }
}

async fn serve(
    registry: RegistryClient,
    (instance, unavailable): (u16, bool),
    port: u16,
    tls: ServeTlsArgs,
) -> ExitCode {
    let (server_tls, id) = match (
        tls.config(None),
        InstanceId::new(&format!("{SERVICE}-{instance}")),
    ) {
        (Ok(server_tls), Ok(id)) => (server_tls, id),
        (Err(e), _) => return fail(&e.to_string()),
        (_, Err(e)) => return fail(&e.to_string()),
    };
    let listener = match net::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
        Ok(listener) => listener,
        Err(e) => return fail(&e),
    };
    let shutdown = cancel_on_signal();
    let stopped = async move { shutdown.cancelled().await };
    let service = match unavailable {
        true => RatingsService::unavailable(id),
        false => RatingsService::new(id),
    };
    match beacon_grpc_example::run(listener, server_tls, registry, service, stopped).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

async fn call(
    registry: RegistryClient,
    tls: Arc<rustls::ClientConfig>,
    items: &[String],
    count: u32,
) -> ExitCode {
    let resolver = Resolver::new(
        registry,
        ResolverConfig {
            tls: Some(Arc::clone(&tls)),
            ..ResolverConfig::default()
        },
    );
    let Ok(service) = SERVICE.parse() else {
        return fail("the service name is invalid");
    };
    let config = ClientConfig {
        http2_prior_knowledge: true,
        tls: Some(tls),
        ..ClientConfig::default()
    };
    let mut ratings = grpc_client(ServiceClient::new(&resolver, &service, config));
    let mut failed = 0;
    for item in items {
        for _ in 0..count {
            let asked = GetRatingRequest { item: item.clone() };
            match tokio::time::timeout(Duration::from_secs(5), ratings.get_rating(asked)).await {
                Ok(Ok(rating)) => {
                    let rating = rating.into_inner();
                    println!(
                        "{}: {} stars (from {})",
                        rating.item, rating.stars, rating.served_by
                    );
                }
                Ok(Err(status)) => {
                    failed += 1;
                    println!("{item}: failed: {}", status.message());
                }
                Err(_) => {
                    failed += 1;
                    println!("{item}: failed: no answer within 5 s");
                }
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(message: &str) -> ExitCode {
    cli::fail("beacon-grpc-ratings", message)
}
