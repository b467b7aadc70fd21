//! The four ways to reach the ratings instances (and, for the steady
//! tables, Beacon without its deadline header), each set up as its users
//! would for this job, and how to watch its failure handling.

use crate::{
    detection::Watch,
    load::Route,
    proxies::{Front, Proxy},
};
use beacon::{
    net::http::{http2_client, http_client_with, HttpClient},
    net::tls::rustls,
    wire::Address,
    BreakerConfig, ClientConfig, RegistryClient, Resolver, ResolverConfig, ServiceClient,
};
use serde::Serialize;
use std::{sync::Arc, time::Duration};
use tokio::time::Instant;

/// Who takes the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Contender {
    /// Beacon's client in the caller.
    Beacon,
    /// The same, not telling the instances their budget
    /// (`ClientConfig::send_deadline` off): in the steady tables only, to
    /// show what that header costs on each protocol.
    BeaconNoDeadline,
    /// A bare hyper-util client, static round-robin: the floor.
    BareClient,
    /// HAProxy in front.
    Haproxy,
    /// nginx in front.
    Nginx,
}

impl Contender {
    /// The four ways, in report order: those the fault scenarios compare.
    pub const ALL: [Contender; 4] = [Self::Beacon, Self::BareClient, Self::Haproxy, Self::Nginx];

    /// Those the steady scenarios compare, in report order: the four, and
    /// Beacon without its deadline header.
    pub const STEADY: [Contender; 5] = [
        Self::Beacon,
        Self::BeaconNoDeadline,
        Self::BareClient,
        Self::Haproxy,
        Self::Nginx,
    ];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Beacon => "beacon",
            Self::BeaconNoDeadline => "beacon, no deadline header",
            Self::BareClient => "bare client",
            Self::Haproxy => "haproxy",
            Self::Nginx => "nginx",
        }
    }
}

/// Beacon's, HAProxy's and nginx's per-try timeout. The bare client has
/// none (nor retries): it waits up to the caller's patience.
pub const PER_TRY: Duration = Duration::from_millis(100);

/// The caller gives up after this in all (an error).
pub const CALLER_PATIENCE: Duration = Duration::from_secs(2);

/// How callers speak to the instances, or to the proxy in front of them.
#[derive(Debug, Clone)]
pub struct Wire {
    /// For the report, e.g. "TLS (h2)".
    pub name: &'static str,
    /// What the proxies listen with (they speak HTTP/1.1 to the instances).
    pub front: Front,
    /// The client's TLS settings (the bench's CA); `None`: Mozilla's roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// HTTP/2 without TLS, by prior knowledge.
    pub h2c: bool,
    /// Beacon checks that each instance's certificate names `ratings`
    /// (`verify_identity`): what a TLS deployment should run, measured so.
    pub verify_identity: bool,
}

impl Wire {
    /// Plain HTTP/1.1: what the steady and fault scenarios use.
    pub fn http1() -> Self {
        Self {
            name: "HTTP/1.1",
            front: Front::Http1,
            tls: None,
            h2c: false,
            verify_identity: false,
        }
    }

    /// A pooled client speaking this wire's protocol.
    fn client(&self) -> HttpClient {
        let tls = self
            .tls
            .clone()
            .unwrap_or_else(beacon::net::tls::default_config);
        let connect = Duration::from_millis(100);
        match self.h2c {
            true => http2_client(connect, tls),
            false => http_client_with(connect, tls),
        }
    }
}

/// A contender ready to take load; its proxy or resolver lives as long as it.
#[derive(Debug)]
pub struct Ready {
    /// How requests reach the instances.
    pub route: Route,
    proxy: Option<Proxy>,
    resolver: Option<Resolver>,
    targets: Vec<String>,
}

impl Ready {
    /// The proxy's configuration, for the report.
    pub fn config(&self) -> Option<String> {
        self.proxy.as_ref().map(|p| p.config.clone())
    }

    /// How to see this contender mark instance `index` (0-based) down.
    pub fn watch(&self, index: usize) -> Watch {
        if let Some(proxy) = &self.proxy {
            return proxy.watch(&self.targets, index);
        }
        match (&self.resolver, self.targets.get(index)) {
            (Some(resolver), Some(target)) => match Address::new(target) {
                Ok(address) => Watch::Beacon {
                    events: resolver.subscribe(),
                    address,
                },
                Err(_) => Watch::Nothing,
            },
            _ => Watch::Nothing,
        }
    }
}

/// Sets `contender` up in front of the instances at `urls` (registered at
/// `registry`), its callers speaking `wire`.
pub async fn ready(
    contender: Contender,
    urls: Vec<String>,
    registry: &str,
    wire: &Wire,
) -> Result<Ready, String> {
    let (route, proxy, resolver) = match contender {
        Contender::Beacon | Contender::BeaconNoDeadline => {
            let send_deadline = contender == Contender::Beacon;
            let (route, resolver) = beacon(registry, urls.len(), wire, send_deadline).await?;
            (route, None, Some(resolver))
        }
        Contender::BareClient => (Route::fixed_over(wire.client(), urls.clone()), None, None),
        Contender::Haproxy => {
            let proxy = Proxy::haproxy(&urls, &wire.front, None)?;
            let route = Route::proxy_over(wire.client(), proxy.url.clone());
            (route, Some(proxy), None)
        }
        Contender::Nginx => {
            let proxy = Proxy::nginx(&urls, &wire.front, None)?;
            let route = Route::proxy_over(wire.client(), proxy.url.clone());
            (route, Some(proxy), None)
        }
    };
    Ok(Ready {
        route,
        proxy,
        resolver,
        targets: urls,
    })
}

/// Beacon's client with the same per-try timeout as the proxies, and a
/// breaker that opens on the first failure like HAProxy's `fall 1` and
/// nginx's `max_fails=1`; waits until it sees all `instances`. Its
/// attempts carry their budget to the instances if `send_deadline`.
async fn beacon(
    registry: &str,
    instances: usize,
    wire: &Wire,
    send_deadline: bool,
) -> Result<(Route, Resolver), String> {
    let client = RegistryClient::from_list(registry, None).map_err(|e| e.to_string())?;
    let resolver = Resolver::new(
        client,
        ResolverConfig {
            breaker: BreakerConfig {
                failure_threshold: 1,
                open_for: Duration::from_secs(2),
                ..BreakerConfig::default()
            },
            tls: wire.tls.clone(),
            ..ResolverConfig::default()
        },
    );
    let config = ClientConfig {
        attempt_timeout: PER_TRY,
        deadline: CALLER_PATIENCE,
        tls: wire.tls.clone(),
        http2_prior_knowledge: wire.h2c,
        verify_identity: wire.verify_identity,
        send_deadline,
        ..ClientConfig::default()
    };
    let service = "ratings".parse().map_err(|e| format!("{e}"))?;
    let ratings = ServiceClient::new(&resolver, &service, config);
    let view = ratings.view().clone();
    let started = Instant::now();
    while view.endpoints().len() < instances {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("Beacon never saw {instances} instances"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((Route::Beacon(ratings), resolver))
}
