//! The `beacon-registry` command.

#![forbid(unsafe_code)]

use beacon_kit::{cli, logging, net, signal::cancel_on_signal, tls};
use beacon_registry::{
    acl::LiveAcl,
    server::{self, Backend, Options},
};
use clap::{Parser, ValueEnum};
use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

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

    /// ACL file (TOML): tokens each scoped to some services, or admin;
    /// reloaded on SIGHUP. Replaces --token.
    #[arg(long, env = "BEACON_ACL", conflicts_with = "token")]
    acl: Option<PathBuf>,

    /// Where registrations are kept.
    #[arg(long, env = "BEACON_STORE", value_enum, default_value_t = StoreKind::Memory)]
    store: StoreKind,

    /// etcd client URLs, comma-separated (with --store etcd).
    #[arg(long, env = "BEACON_ETCD", value_delimiter = ',', required_if_eq("store", "etcd"), value_parser = etcd_url)]
    etcd: Vec<String>,

    /// Key prefix in etcd (with --store etcd); replicas sharing a prefix share their state.
    #[arg(long, env = "BEACON_ETCD_PREFIX", default_value = "/beacon/services/")]
    etcd_prefix: String,

    /// Most instances the registry takes; a new one past it is 429
    /// `too_many_instances` (a replacement always passes).
    #[arg(long, env = "BEACON_MAX_INSTANCES", default_value_t = 1_000_000)]
    max_instances: usize,

    /// Most instances in any one service.
    #[arg(long, env = "BEACON_MAX_PER_SERVICE", default_value_t = 100_000)]
    max_per_service: usize,

    #[command(flatten)]
    tls: tls::ServeTlsArgs,

    /// The site (data center) this registry serves, said in `/_health`
    /// (e.g. `a`, `eu-west`): one registry cluster per site.
    #[arg(long, env = "BEACON_DC", value_parser = cli::zone)]
    dc: Option<String>,

    /// Require every client to present a certificate this CA (PEM) signed;
    /// needs --tls-cert. Writes still need --token when one is set.
    #[arg(long, env = "BEACON_CLIENT_CA", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// In this process's memory: fast, lost on restart (instances re-register).
    Memory,
    /// In an etcd cluster, shared by every replica pointed at it.
    Etcd,
}

fn etcd_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let uri: http::Uri = raw.parse().map_err(|_| format!("{raw:?} is not a URL"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(_)) => Ok(raw.trim_end_matches('/').to_owned()),
        _ => Err(format!("{raw:?} is not an http://host:port URL")),
    }
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
    let backend = match cli.store {
        StoreKind::Memory => Backend::Memory,
        StoreKind::Etcd => Backend::Etcd {
            urls: cli.etcd,
            prefix: cli.etcd_prefix,
        },
    };
    let tls = match cli.tls.config(cli.client_ca.as_deref()) {
        Ok(config) => config,
        Err(err) => return cli::fail("beacon-registry", &err.to_string()),
    };
    let acl = match cli.acl.as_deref().map(LiveAcl::load).transpose() {
        Ok(acl) => acl,
        Err(err) => return cli::fail("beacon-registry", &err.to_string()),
    };
    if let Some(acl) = &acl {
        if let Err(err) = acl.reload_on_hangup(shutdown.clone()) {
            return cli::fail(
                "beacon-registry",
                &format!("cannot watch for SIGHUP: {err}"),
            );
        }
    }
    let options = Options {
        token: cli.token,
        acl,
        limits: Some((cli.max_instances, cli.max_per_service)),
        backend,
        tls,
        dc: cli.dc,
    };
    match server::run(listener, options, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => cli::fail("beacon-registry", &err.to_string()),
    }
}
