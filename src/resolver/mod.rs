//! The client side of discovery: a live view of each service's instances.
//!
//! A [`Resolver`] keeps one [`ServiceView`] per service, shared by every
//! caller, and one background task per view that follows the registry's
//! stream of changes (`/changes?stream=true`) and reconciles each line
//! into the view.
//! Instances keep their breaker across answers, because endpoints are keyed
//! by address; each endpoint has one recovery task that brings its breaker
//! back.
//!
//! # Layout
//!
//! * this module: [`Resolver`] and its configuration.
//! * `view`: [`ServiceView`], what callers read.
//! * `poll`: the watch (a stream of changes, or a long poll of the list
//!   on a registry without the feed), and the one map of tracked endpoints.
//! * `reconcile`: a pure function from (tracked, listed) to changes.
//! * `recovery`: each endpoint's task that half-opens and probes its breaker.

mod poll;
mod reconcile;
mod recovery;
mod view;

pub use view::ServiceView;

use crate::breaker::BreakerConfig;
use crate::events::Event;
use crate::health::{HealthCheckConfig, HealthChecker};
use crate::lease::{LeaseName, SharedLease};
use crate::registry_client::RegistryClient;
use crate::wire::ServiceName;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};
use tokio::sync::broadcast;

/// Tunables of a [`Resolver`].
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// Breaker settings for every instance.
    pub breaker: BreakerConfig,
    /// Active checks of instances whose breaker is open, so they come back
    /// as soon as they answer; `None` leaves recovery to the open time and
    /// to re-registration.
    pub health_check: Option<HealthCheckConfig>,
    /// Longest quiet on the stream of changes (the registry sends an empty
    /// line after it; a stream silent longer is dead), and the wait of a
    /// blocking query where there is no stream. Default 30 s.
    pub watch_wait: Duration,
    /// First retry delay after a failed registry call. Default 100 ms.
    pub retry_base: Duration,
    /// Longest retry delay while the registry is unreachable. Default 5 s.
    pub retry_cap: Duration,
    /// Events kept for slow subscribers before they start missing some.
    pub event_capacity: usize,
    /// Decay time τ of each instance's latency estimate (a peak-sensitive
    /// moving average, as linkerd's and Finagle's): how long a slowdown is remembered, and
    /// so how soon a drained instance is tried again. Shared by every
    /// caller of the view, like the breakers. Default 1 s: a slow instance
    /// gets a trial call every few τ (about 4 s at 40 ms against 1 ms), a
    /// healed one is back to its full share within seconds, and one slow
    /// answer from a healthy instance is forgotten as quickly. linkerd uses
    /// 10 s; measured here (`make bench`, hang), a single early peak then
    /// kept an instance drained for most of a minute at a few hundred calls
    /// a second, where calls in flight are too few to outweigh it.
    pub latency_decay: Duration,
    /// TLS for health checks of `https://` instances (your CA, a client
    /// certificate), and for the clients [`ServiceClient::builder`](crate::ServiceClient::builder)
    /// makes. Default `None`: the registry client's TLS (so TLS given to
    /// [`RegistryClientConfig`](crate::RegistryClientConfig) is given once
    /// for all), else Mozilla's roots.
    pub tls: Option<Arc<crate::net::tls::rustls::ClientConfig>>,
    /// Watch each service as a subset of its instances rather than all of
    /// them: for large fleets, where every caller connecting to every
    /// instance costs too many connections. Default `None` (all).
    pub subset: Option<Subset>,
}

/// A subset of each service's instances for this process, chosen by the
/// registry so that every instance gets the same share of callers (see the
/// README, "Subsets").
#[derive(Debug, Clone)]
pub struct Subset {
    /// How many instances (K), 1 to 1000.
    pub size: usize,
    /// What names this process to the registry: its shared lease. The
    /// registry ranks callers by it, and stops counting one whose lease
    /// ends.
    pub client: LeaseName,
}

impl Subset {
    /// `size` instances for the process holding `lease`.
    pub fn new(size: usize, lease: &SharedLease) -> Self {
        Self {
            size,
            client: lease.name(),
        }
    }
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            breaker: BreakerConfig::default(),
            health_check: Some(HealthCheckConfig::default()),
            watch_wait: Duration::from_secs(30),
            retry_base: Duration::from_millis(100),
            retry_cap: Duration::from_secs(5),
            event_capacity: 1024,
            latency_decay: Duration::from_secs(1),
            tls: None,
            subset: None,
        }
    }
}

/// Resolves service names to live views. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Resolver {
    shared: Arc<ResolverShared>,
}

#[derive(Debug)]
struct ResolverShared {
    registry: RegistryClient,
    config: ResolverConfig,
    views: Mutex<HashMap<ServiceName, Weak<ServiceView>>>,
    events: broadcast::Sender<Event>,
    health: Option<Arc<HealthChecker>>,
}

impl Resolver {
    /// A resolver over `registry`.
    pub fn new(registry: RegistryClient, config: ResolverConfig) -> Self {
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let mut config = config;
        if config.tls.is_none() {
            config.tls = registry.tls();
        }
        let health = config
            .health_check
            .clone()
            .map(|c| Arc::new(HealthChecker::with_tls(c, config.tls.clone())));
        Self {
            shared: Arc::new(ResolverShared {
                registry,
                config,
                views: Mutex::new(HashMap::new()),
                events,
                health,
            }),
        }
    }

    /// The shared view of `service`, starting its watch on first use. The
    /// watch stops when the last handle on the view is dropped. Call inside
    /// a tokio runtime.
    pub fn service(&self, service: &ServiceName) -> Arc<ServiceView> {
        let mut views = self
            .shared
            .views
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(view) = views.get(service).and_then(Weak::upgrade) {
            return view;
        }
        views.retain(|_, view| view.strong_count() > 0);
        let view = ServiceView::start(service.clone(), &self.shared);
        views.insert(service.clone(), Arc::downgrade(&view));
        view
    }

    /// Every event of every service, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// The TLS for instances: [`ResolverConfig::tls`], or the registry
    /// client's when that was not given.
    pub fn tls(&self) -> Option<Arc<crate::net::tls::rustls::ClientConfig>> {
        self.shared.config.tls.clone()
    }

    /// The registry client underneath.
    pub fn registry(&self) -> &RegistryClient {
        &self.shared.registry
    }
}
