//! The `beacon-market` command.

#![forbid(unsafe_code)]

use beacon::{RegistryClient, RegistryClientConfig};
use beacon_kit::{cli, logging, net, signal::cancel_on_signal, tls};
use beacon_market::{
    app::Guards,
    server::{self, Options},
    store::{sealing::DataKey, signing::Signer, Kind, Store},
};
use clap::Parser;
use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

/// The demo market: things, ratings through Beacon, a cart, and a live panel.
#[derive(Debug, Parser)]
#[command(name = "beacon-market", version, about)]
struct Cli {
    /// Address to serve the web app on.
    #[arg(long, env = "BEACON_MARKET_LISTEN", default_value = "127.0.0.1:5000")]
    listen: SocketAddr,

    /// Registry URLs, comma-separated, tried in order.
    #[arg(long, env = "BEACON_REGISTRY", default_value = "http://127.0.0.1:8400", value_parser = cli::registry_urls)]
    registry: String,

    /// Every page answers within this many milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    deadline_ms: u64,

    /// Longest wait for one ratings instance, in milliseconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    attempt_timeout_ms: u64,

    /// Consecutive failures that open an instance's breaker (1, like the original demo).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    breaker_threshold: u32,

    /// How long an open breaker waits before a probe, in milliseconds (30 s, like the original).
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    breaker_open_ms: u64,

    /// Oldest cached rating still shown, in milliseconds; older ones show as
    /// `none` (default 5 minutes).
    #[arg(long, env = "BEACON_MARKET_RATING_MAX_AGE_MS", default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    rating_max_age_ms: u64,

    /// Where carts, customers and orders are kept: `sqlite:PATH` (a file,
    /// shared by the market processes of one machine) or
    /// `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "BEACON_MARKET_DB", default_value = "sqlite:market.db")]
    db: String,

    /// The secret that signs every stored document, so that a row changed
    /// outside the market is refused. Every replica needs the same one.
    #[arg(long, env = "BEACON_MARKET_SECRET", hide_env_values = true, value_parser = secret)]
    secret: String,

    /// Support's bearer token: with `Authorization: Bearer <token>` a
    /// caller may read any customer record, and find one by email. At
    /// least 16 characters.
    #[arg(long, env = "BEACON_MARKET_ADMIN_TOKEN", hide_env_values = true, value_parser = admin_token)]
    admin_token: Option<String>,

    /// Versions of each cart and customer kept in the history (the bases
    /// of three-way merges); older ones are deleted as new ones are written.
    #[arg(long, env = "BEACON_MARKET_HISTORY_VERSIONS", default_value_t = beacon_market::store::HISTORY_KEPT, value_parser = clap::value_parser!(i64).range(1..))]
    history_versions: i64,

    /// The zone this market runs in: ratings instances registered in it
    /// are preferred (see the README, "Zones").
    #[arg(long, env = "BEACON_MARKET_ZONE", value_parser = cli::zone)]
    zone: Option<String>,

    /// The site (data center) this market runs in, registered as its `dc`
    /// metadata; its --registry is that site's.
    #[arg(long, env = "BEACON_DC", value_parser = cli::zone)]
    dc: Option<String>,

    /// Another site's registry, `NAME=URL[,URL…]` (repeatable): its
    /// ratings instances take the calls this site's can't (see the
    /// README, "Several sites").
    #[arg(long = "remote-dc", value_parser = remote_dc)]
    remote_dcs: Vec<(String, String)>,

    /// Call only ratings instances whose server certificate names the
    /// `ratings` service (`spiffe://beacon/service/ratings`, as
    /// `beacon-certs` issues): an instance with another service's
    /// certificate, or on plain http, never gets a call.
    #[arg(long, env = "BEACON_VERIFY_IDENTITY")]
    verify_identity: bool,

    /// Encrypt customers' name, email and address at rest with this key:
    /// 64 hex digits (32 bytes, AES-256-GCM). Without it they are kept in
    /// clear.
    #[arg(long, env = "BEACON_MARKET_DATA_KEY", hide_env_values = true, value_parser = data_key)]
    data_key: Option<DataKey>,

    /// Keys that sealed data before --data-key, comma-separated: still
    /// opened, never used to seal (see `rotate-key`).
    #[arg(long, env = "BEACON_MARKET_OLD_DATA_KEYS", hide_env_values = true, value_parser = data_key, value_delimiter = ',')]
    old_data_keys: Vec<DataKey>,

    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    serve_tls: tls::ServeTlsArgs,

    #[command(flatten)]
    client_tls: tls::ClientTlsArgs,
}

/// What to do instead of serving.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Reseal every stored customer value (current versions and history)
    /// with --data-key, opening what --old-data-keys sealed (values kept in
    /// clear are sealed too), then exit. Safe beside running markets given
    /// the same keys.
    RotateKey,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let keys: Vec<DataKey> = cli
        .data_key
        .iter()
        .chain(&cli.old_data_keys)
        .cloned()
        .collect();
    if let Some(Command::RotateKey) = cli.command {
        return rotate_key(&cli, keys).await;
    }
    let (serve_tls, client_tls) = match (cli.serve_tls.config(None), cli.client_tls.config()) {
        (Ok(serve), Ok(client)) => (serve, client),
        (Err(e), _) | (_, Err(e)) => return fail(&e.to_string()),
    };
    let registry_config = RegistryClientConfig {
        tls: Some(Arc::clone(&client_tls)),
        ..RegistryClientConfig::default()
    };
    let registry =
        match RegistryClient::from_list_with(&cli.registry, None, registry_config.clone()) {
            Ok(registry) => registry,
            Err(e) => return fail(&e.to_string()),
        };
    let mut remote_dcs = Vec::new();
    for (name, urls) in &cli.remote_dcs {
        match RegistryClient::from_list_with(urls, None, registry_config.clone()) {
            Ok(registry) => remote_dcs.push((name.clone(), registry)),
            Err(e) => return fail(&format!("--remote-dc {name}: {e}")),
        }
    }
    if cli.data_key.is_none() && !keys.is_empty() {
        return fail("--old-data-keys needs --data-key (the key that seals)");
    }
    let store = match Store::open(&cli.db, cli.secret.as_bytes()).await {
        Ok(store) => store.keeping(cli.history_versions).sealed_with(keys),
        Err(e) => return fail(&e.to_string()),
    };
    let listener = match net::bind(cli.listen).await {
        Ok(listener) => listener,
        Err(e) => return fail(&e),
    };
    let options = Options {
        store,
        registry,
        deadline: Duration::from_millis(cli.deadline_ms),
        attempt_timeout: Duration::from_millis(cli.attempt_timeout_ms),
        breaker_threshold: cli.breaker_threshold,
        breaker_open: Duration::from_millis(cli.breaker_open_ms),
        rating_max_age: Duration::from_millis(cli.rating_max_age_ms),
        client_tls: Some(client_tls),
        verify_identity: cli.verify_identity,
        serve_tls,
        zone: cli.zone.clone(),
        dc: cli.dc.clone(),
        remote_dcs,
        guards: Guards {
            session_keys: Signer::new(cli.secret.as_bytes()),
            admin_token: cli.admin_token.clone(),
        },
    };
    match server::run(listener, options, cancel_on_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

/// `rotate-key`: reseals every customer with the data key.
async fn rotate_key(cli: &Cli, keys: Vec<DataKey>) -> ExitCode {
    let Some(key) = &cli.data_key else {
        return fail("rotate-key needs --data-key: the key to reseal with");
    };
    let store = match Store::open(&cli.db, cli.secret.as_bytes()).await {
        Ok(store) => store.sealed_with(keys),
        Err(e) => return fail(&e.to_string()),
    };
    let outcome = store.reseal(Kind::Customer).await;
    store.close().await;
    match outcome {
        Ok(rotated) => {
            println!(
                "resealed {} customer rows with data key {}; {} were already sealed with it",
                rotated.resealed,
                key.id(),
                rotated.current
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("rotating the data key: {e}")),
    }
}

/// `--remote-dc NAME=URL[,URL…]`: a site's name and its registry's URLs.
fn remote_dc(raw: &str) -> Result<(String, String), String> {
    let (name, urls) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?} is not NAME=URL[,URL…]"))?;
    let name = cli::zone(name).map_err(|e| format!("site name {name:?}: {e}"))?;
    Ok((name, cli::registry_urls(urls)?))
}

/// A data key: 64 hex digits.
fn data_key(raw: &str) -> Result<DataKey, String> {
    DataKey::from_hex(raw)
}

/// A signing secret: long enough not to be guessed.
fn secret(raw: &str) -> Result<String, String> {
    if raw.len() < 16 {
        return Err("must be at least 16 characters: it signs the stored documents".into());
    }
    Ok(raw.to_owned())
}

/// An admin token: long enough not to be guessed.
fn admin_token(raw: &str) -> Result<String, String> {
    if raw.len() < 16 {
        return Err("must be at least 16 characters: it reads every customer's details".into());
    }
    Ok(raw.to_owned())
}

fn fail(message: &str) -> ExitCode {
    cli::fail("beacon-market", message)
}
