//! `beacon-load`: HTTP load at a fixed rate or a fixed concurrency, through
//! Beacon's client, a static round-robin over URLs, or one URL (a proxy).

#![forbid(unsafe_code)]

use beacon::{ClientConfig, RegistryClient, Resolver, ResolverConfig, ServiceClient};
use beacon_bench::{
    load::{closed_loop, open_loop, Route, Workload},
    stats::Summary,
};
use clap::Parser;
use std::{path::PathBuf, process::ExitCode, time::Duration};

/// Sends load and reports throughput, latency percentiles and errors.
#[derive(Debug, Parser)]
#[command(name = "beacon-load", version, about)]
struct Cli {
    /// Target base URLs, comma-separated: one (e.g. a proxy) or several
    /// (static round-robin). Not with --service.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "service",
        required_unless_present = "service"
    )]
    url: Vec<String>,

    /// Resolve this service through Beacon instead (needs --registry).
    #[arg(long, requires = "registry")]
    service: Option<String>,

    /// Registry URLs for --service, comma-separated.
    #[arg(long, env = "BEACON_REGISTRY")]
    registry: Option<String>,

    /// Path requested.
    #[arg(long, default_value = "/ratings/camera")]
    path: String,

    /// Requests started per second (open loop). Without it, --concurrency callers in a closed loop.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    rate: Option<u32>,

    /// Callers in a closed loop.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    concurrency: u64,

    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,

    /// A request not answered within this many milliseconds is an error.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    timeout_ms: u64,

    /// Write every request's record (start, latency, outcome, instance) here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let route = match route(&cli) {
        Ok(route) => route,
        Err(e) => {
            eprintln!("beacon-load: {e}");
            return ExitCode::from(2);
        }
    };
    let workload = Workload {
        path: cli.path.clone(),
        timeout: Duration::from_millis(cli.timeout_ms),
        duration: Duration::from_secs(cli.seconds),
    };
    let samples = match cli.rate {
        Some(rate) => open_loop(&route, &workload, rate, |_| async {}).await,
        None => closed_loop(&route, &workload, cli.concurrency as usize).await,
    };
    let summary = Summary::of(&samples, workload.duration);
    println!(
        "{} requests, {} errors, {:.0} req/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        summary.requests,
        summary.errors,
        summary.throughput,
        summary.p50_ms,
        summary.p90_ms,
        summary.p99_ms,
        summary.max_ms
    );
    if let Some(path) = &cli.out {
        let written = serde_json::to_vec(&samples)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("beacon-load: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn route(cli: &Cli) -> Result<Route, String> {
    if let Some(service) = &cli.service {
        let registry = RegistryClient::from_list(cli.registry.as_deref().unwrap_or_default(), None)
            .map_err(|e| e.to_string())?;
        let resolver = Resolver::new(registry, ResolverConfig::default());
        let service = service.parse().map_err(|e| format!("--service: {e}"))?;
        return Ok(Route::Beacon(ServiceClient::new(
            &resolver,
            &service,
            ClientConfig::default(),
        )));
    }
    for url in &cli.url {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| format!("--url {url:?} is not a URL"))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(format!("--url {url:?} is not an http://host:port URL"));
        }
    }
    Ok(match cli.url.as_slice() {
        [one] => Route::proxy(one.trim_end_matches('/').to_owned()),
        many => Route::fixed(
            many.iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
        ),
    })
}
