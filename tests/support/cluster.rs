//! A registry, backends kept registered by leases, and a client: the
//! fixture of the client-library tests.

use super::{backend::Backend, eventually, TestRegistry};
use beacon::{
    wire::{Address, Registration, ServiceName},
    Balancing, BreakerConfig, BreakerState, ClientConfig, HealthCheckConfig, Lease, RegistryClient,
    Resolver, ResolverConfig, ServiceClient,
};
use std::time::Duration;

pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn ratings() -> ServiceName {
    "ratings".parse().expect("valid")
}

pub fn registration(backend: &Backend, ttl_ms: u64) -> Registration {
    Registration {
        ttl: Duration::from_millis(ttl_ms),
        ..Registration::new(Address::new(&backend.url).expect("address"))
    }
}

pub fn fast_client() -> ClientConfig {
    ClientConfig {
        attempt_timeout: Duration::from_millis(200),
        deadline: Duration::from_secs(2),
        // These tests count calls per instance: in turn, and no hedges,
        // makes that exact.
        balancing: Balancing::RoundRobin,
        hedging: None,
        ..ClientConfig::default()
    }
}

/// A registry, `n` backends kept registered by leases, and a client.
pub struct Cluster {
    /// `None` while a test has the registry stopped.
    pub registry: Option<TestRegistry>,
    pub registry_addr: String,
    pub backends: Vec<Backend>,
    /// Held so the instances stay registered.
    pub _leases: Vec<Lease>,
    pub resolver: Resolver,
    pub client: ServiceClient,
}

impl Cluster {
    /// Recovery driven by requests alone (no health checks), so tests can
    /// count exactly what reaches each backend.
    pub async fn start(n: usize, breaker: BreakerConfig, config: ClientConfig) -> Self {
        Self::start_with(n, breaker, config, 15_000, None).await
    }

    pub async fn start_with(
        n: usize,
        breaker: BreakerConfig,
        config: ClientConfig,
        ttl_ms: u64,
        health_check: Option<HealthCheckConfig>,
    ) -> Self {
        let registry = TestRegistry::start(None).await;
        let registry_client = RegistryClient::from_list(&registry.url, None).expect("client");
        let mut backends = Vec::new();
        let mut leases = Vec::new();
        for i in 1..=n {
            let backend = Backend::start(&format!("ratings-{i}")).await;
            let lease = Lease::start(
                registry_client.clone(),
                ratings(),
                format!("ratings-{i}").parse().expect("id"),
                registration(&backend, ttl_ms),
            );
            lease.registered().await;
            backends.push(backend);
            leases.push(lease);
        }
        let resolver = Resolver::new(
            registry_client,
            ResolverConfig {
                breaker,
                health_check,
                ..ResolverConfig::default()
            },
        );
        let client = ServiceClient::new(&resolver, &ratings(), config);
        let registry_addr = registry.addr().to_owned();
        let cluster = Self {
            registry: Some(registry),
            registry_addr,
            backends,
            _leases: leases,
            resolver,
            client,
        };
        cluster.until_instances(n).await;
        cluster
    }

    pub async fn until_instances(&self, n: usize) {
        let view = self.client.view();
        eventually(PATIENCE, &format!("{n} instances in the view"), || async {
            (view.endpoints().len() == n).then_some(())
        })
        .await;
    }

    pub fn registry_addr_url(&self) -> String {
        format!("http://{}", self.registry_addr)
    }

    pub async fn stop_registry(&mut self) {
        if let Some(registry) = self.registry.take() {
            registry.stop().await;
        }
    }

    /// Starts an empty registry on the same address as before.
    pub async fn restart_registry(&mut self) {
        self.stop_registry().await;
        self.registry = Some(TestRegistry::start_at(&self.registry_addr, None).await);
    }

    pub fn breaker_of(&self, backend: usize) -> BreakerState {
        let url = &self.backends[backend].url;
        self.client
            .snapshot()
            .instances
            .iter()
            .find(|i| i.address.as_str() == url)
            .map(|i| i.breaker)
            .expect("instance in snapshot")
    }

    /// Asserts that `backend`'s breaker stays `state` for all of `window`
    /// (the claim of a test, not a settling time).
    pub async fn holds_breaker(&self, backend: usize, state: BreakerState, window: Duration) {
        let what = format!("backend {backend}'s breaker staying {state:?}");
        super::holds_for(window, &what, || async {
            match self.breaker_of(backend) {
                now if now == state => Ok(()),
                other => Err(format!("it is {other:?}")),
            }
        })
        .await;
    }

    pub async fn until_breaker(&self, backend: usize, state: BreakerState) {
        eventually(
            PATIENCE,
            &format!("backend {backend} breaker {state:?}"),
            || async { (self.breaker_of(backend) == state).then_some(()) },
        )
        .await;
    }

    /// GETs in sequence (each must succeed) until `backend`'s breaker is
    /// `state`, for breaker changes that only traffic brings about; fails
    /// after [`PATIENCE`] rather than looping for ever.
    pub async fn get_ok_until_breaker(&self, backend: usize, state: BreakerState) {
        eventually(
            PATIENCE,
            &format!("backend {backend} breaker {state:?} under traffic"),
            || async {
                if self.breaker_of(backend) == state {
                    return Some(());
                }
                self.get_ok(1).await;
                None
            },
        )
        .await;
    }

    /// `count` GETs in sequence; all must succeed.
    pub async fn get_ok(&self, count: usize) {
        for n in 0..count {
            let response = self.client.get("/ratings/camera").await;
            let response = response.unwrap_or_else(|e| panic!("request {n} failed: {e}"));
            assert_eq!(response.status(), 200);
        }
    }

    pub fn hits(&self) -> Vec<usize> {
        self.backends.iter().map(Backend::hits).collect()
    }
}

pub fn breaker(threshold: u32, open_for_ms: u64) -> BreakerConfig {
    BreakerConfig {
        failure_threshold: threshold,
        open_for: Duration::from_millis(open_for_ms),
        max_open_for: Duration::from_millis(open_for_ms * 4),
        jitter: 0.0,
        // Consecutive failures only: the tests say how many open it.
        failure_rate: None,
        ..BreakerConfig::default()
    }
}
