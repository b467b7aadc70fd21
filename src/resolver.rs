//! The client side of discovery: a live view of each service's instances.
//!
//! A [`Resolver`] keeps one [`ServiceView`] per service, shared by every
//! caller, and one background task per view that long-polls the registry
//! (`?index=N&wait=30s`) and applies each answer as inserts and removals.
//! Instances keep their breaker across answers, because endpoints are keyed
//! by address.
//!
//! When no registry answers, the view keeps its last-known instances
//! (stale-if-error), reports `registry_reachable = false` and retries with
//! capped backoff. The first answer after an outage — or any answer whose
//! index went back, the mark of a registry that restarted — may come from a
//! registry that lost its state; instances missing from it are kept for one
//! lease length, long enough for their leases to register them again, rather
//! than dropped at once.

use crate::backoff::Backoff;
use crate::breaker::{Admission, BreakerConfig, Transition};
use crate::endpoint::Endpoint;
use crate::events::{Event, EventKind, ServiceSnapshot};
use crate::health::{HealthCheckConfig, HealthChecker};
use crate::registry::RegistryClient;
use crate::wire::{Address, Instance, ServiceInstances, ServiceName, WatchQuery};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex, PoisonError, RwLock, Weak,
    },
    time::Duration,
};
use tokio::{
    sync::{broadcast, watch},
    task::JoinHandle,
    time::Instant,
};

/// Tunables of a [`Resolver`].
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// Breaker settings for every instance.
    pub breaker: BreakerConfig,
    /// Active checks of instances whose breaker is open, so they come back
    /// as soon as they answer; `None` leaves recovery to the open time and
    /// to re-registration.
    pub health_check: Option<HealthCheckConfig>,
    /// How long each blocking query waits for a change. Default 30 s.
    pub watch_wait: Duration,
    /// First retry delay after a failed registry call. Default 100 ms.
    pub retry_base: Duration,
    /// Longest retry delay while the registry is unreachable. Default 5 s.
    pub retry_cap: Duration,
    /// Events kept for slow subscribers before they start missing some.
    pub event_capacity: usize,
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
        let health = config
            .health_check
            .clone()
            .map(|c| Arc::new(HealthChecker::new(c)));
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

    /// The registry client underneath.
    pub fn registry(&self) -> &RegistryClient {
        &self.shared.registry
    }
}

/// One service's live instances, shared by all its callers.
#[derive(Debug)]
pub struct ServiceView {
    service: ServiceName,
    /// Replaced whole on every change, so a request takes a cheap `Arc`
    /// clone under a read lock and never holds a lock while it waits.
    endpoints: RwLock<Arc<[Arc<Endpoint>]>>,
    /// Round-robin position.
    cursor: AtomicUsize,
    reachable: AtomicBool,
    /// Becomes true at the first registry answer, so early callers can wait
    /// for it rather than fail with "no instances".
    synced: watch::Sender<bool>,
    events: broadcast::Sender<Event>,
    health: Option<Arc<HealthChecker>>,
    me: Weak<ServiceView>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl ServiceView {
    fn start(service: ServiceName, resolver: &ResolverShared) -> Arc<Self> {
        let view = Arc::new_cyclic(|me| Self {
            service,
            endpoints: RwLock::new(Arc::from(Vec::new())),
            cursor: AtomicUsize::new(0),
            reachable: AtomicBool::new(true),
            synced: watch::Sender::new(false),
            events: resolver.events.clone(),
            health: resolver.health.clone(),
            me: me.clone(),
            watcher: Mutex::new(None),
        });
        let watch = Watch {
            view: Arc::downgrade(&view),
            registry: resolver.registry.clone(),
            config: resolver.config.clone(),
            retired: HashMap::new(),
            stale_until: HashMap::new(),
            ttls: HashMap::new(),
        };
        let task = tokio::spawn(watch.run());
        *view.watcher.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        view
    }

    /// The service's name.
    pub fn service(&self) -> &ServiceName {
        &self.service
    }

    /// The current instances, ordered by id.
    pub fn endpoints(&self) -> Arc<[Arc<Endpoint>]> {
        Arc::clone(
            &self
                .endpoints
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The next round-robin starting point.
    pub(crate) fn next_cursor(&self) -> usize {
        self.cursor.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the last registry call succeeded.
    pub fn registry_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Waits for the first registry answer until `deadline`. Returns whether
    /// it came.
    pub async fn wait_synced(&self, deadline: Instant) -> bool {
        if *self.synced.borrow() {
            return true;
        }
        let mut synced = self.synced.subscribe();
        tokio::time::timeout_at(deadline, synced.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Every instance with its breaker and record.
    pub fn snapshot(&self) -> ServiceSnapshot {
        let now = Instant::now();
        ServiceSnapshot {
            service: self.service.clone(),
            registry_reachable: self.registry_reachable(),
            instances: self.endpoints().iter().map(|e| e.snapshot(now)).collect(),
        }
    }

    /// Logs and broadcasts a breaker transition, and starts recovery: a
    /// breaker that just opened is watched until it may half-open (its open
    /// time passes, or a health check finds the instance answering), and a
    /// half-open one is probed by the health checker if there is one —
    /// dashboards see each change when it happens, not at the next request.
    pub(crate) fn report(&self, endpoint: &Arc<Endpoint>, transition: Transition) {
        let (service, address, id) = (&self.service, endpoint.address(), endpoint.id());
        let kind = match transition {
            Transition::Opened(open_for) => {
                tracing::warn!("OPEN breaker on [{service} at {address}]");
                self.recover(endpoint);
                EventKind::BreakerOpened {
                    id,
                    address: address.clone(),
                    open_for_ms: u64::try_from(open_for.as_millis()).unwrap_or(u64::MAX),
                    error: endpoint.last_error().unwrap_or_default(),
                }
            }
            Transition::HalfOpened => {
                tracing::info!("HALF-OPEN breaker on [{service} at {address}]");
                self.probe(endpoint);
                EventKind::BreakerHalfOpened {
                    id,
                    address: address.clone(),
                }
            }
            Transition::Closed => {
                tracing::info!("CLOSE breaker on [{service} at {address}]");
                EventKind::BreakerClosed {
                    id,
                    address: address.clone(),
                }
            }
        };
        self.emit(kind);
    }

    /// Waits until an open breaker may half-open: its open time passed, or
    /// (with health checks) the instance answered one.
    fn recover(&self, endpoint: &Arc<Endpoint>) {
        let (view, endpoint, health) = (self.me.clone(), Arc::clone(endpoint), self.health.clone());
        tokio::spawn(async move {
            while let Some(until) = endpoint.open_until() {
                let wake = match &health {
                    Some(health) => until.min(Instant::now() + health.interval()),
                    None => until,
                };
                tokio::time::sleep_until(wake).await;
                let transition = if Instant::now() >= until {
                    endpoint.poll_breaker(Instant::now())
                } else if let Some(health) = &health {
                    match health.check(endpoint.address()).await {
                        Ok(()) => endpoint.seen_alive(),
                        Err(_) => None,
                    }
                } else {
                    None
                };
                let Some(view) = view.upgrade() else {
                    return; // nobody looks at this service any more
                };
                if let Some(t) = transition {
                    view.report(&endpoint, t);
                    return;
                }
            }
        });
    }

    /// Sends a half-open breaker's single probe as a health check, unless a
    /// request took the probe slot first.
    fn probe(&self, endpoint: &Arc<Endpoint>) {
        let Some(health) = self.health.clone() else {
            return;
        };
        let (view, endpoint) = (self.me.clone(), Arc::clone(endpoint));
        tokio::spawn(async move {
            let (admission, _) = endpoint.admit(Instant::now());
            if admission != Admission::Probe {
                return;
            }
            let started = Instant::now();
            let transition = match health.check(endpoint.address()).await {
                Ok(()) => endpoint.succeeded(admission, started.elapsed()),
                Err(error) => endpoint.failed(admission, error, Instant::now()),
            };
            if let (Some(view), Some(t)) = (view.upgrade(), transition) {
                view.report(&endpoint, t);
            }
        });
    }

    fn emit(&self, kind: EventKind) {
        // No subscribers is fine: events are for whoever listens.
        let _ = self.events.send(Event::now(&self.service, kind));
    }

    fn set_reachable(&self, reachable: bool, error: Option<String>) {
        if self.reachable.swap(reachable, Ordering::Relaxed) == reachable {
            return;
        }
        let service = &self.service;
        if reachable {
            tracing::info!("registry reachable again; {service} view is live");
            self.emit(EventKind::RegistryRegained);
        } else {
            let error = error.unwrap_or_default();
            tracing::warn!("registry unreachable; using last-known {service} instances: {error}");
            self.emit(EventKind::RegistryLost { error });
        }
    }
}

impl Drop for ServiceView {
    fn drop(&mut self) {
        let task = self
            .watcher
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

/// The background long-poll of one view, with the bookkeeping that only it
/// touches.
struct Watch {
    view: Weak<ServiceView>,
    registry: RegistryClient,
    config: ResolverConfig,
    /// Endpoints the registry dropped recently, with when to forget them:
    /// if the address registers again, its breaker and record come back
    /// (and an open breaker goes straight to HalfOpen).
    retired: HashMap<Address, (Arc<Endpoint>, Instant)>,
    /// Endpoints kept after an outage although the registry no longer lists
    /// them, until when.
    stale_until: HashMap<Address, Instant>,
    /// Lease length of each listed instance: how long to keep it after an outage.
    ttls: HashMap<Address, Duration>,
}

impl Watch {
    async fn run(mut self) {
        let mut index: Option<u64> = None;
        let mut after_outage = false;
        let mut backoff = Backoff::new(self.config.retry_base, self.config.retry_cap);
        loop {
            let Some(service) = self.view.upgrade().map(|v| v.service.clone()) else {
                return;
            };
            let result = match index {
                None => self.registry.resolve(&service).await,
                Some(index) => {
                    let wait = self.next_wait();
                    self.registry
                        .watch(&service, WatchQuery { index, wait })
                        .await
                }
            };
            let Some(view) = self.view.upgrade() else {
                return;
            };
            match result {
                Ok(answer) => {
                    view.set_reachable(true, None);
                    // An index going back means the registry lost its state
                    // (it restarted faster than we could notice it was gone).
                    let forgot = index.is_some_and(|old| answer.index < old);
                    index = Some(answer.index);
                    self.apply(&view, answer, after_outage || forgot);
                    view.synced.send_replace(true);
                    after_outage = false;
                    backoff.reset();
                }
                Err(error) => {
                    view.set_reachable(false, Some(error.to_string()));
                    index = None;
                    after_outage = true;
                    drop(view);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// The blocking query's wait: the configured one, or less if a stale
    /// endpoint is due to go sooner.
    fn next_wait(&self) -> Duration {
        let now = Instant::now();
        self.stale_until
            .values()
            .map(|until| until.saturating_duration_since(now) + Duration::from_millis(1))
            .fold(self.config.watch_wait, Duration::min)
    }

    /// Applies one registry answer to the view.
    fn apply(&mut self, view: &ServiceView, answer: ServiceInstances, after_outage: bool) {
        let now = Instant::now();
        let current = view.endpoints();
        let mut next: Vec<Arc<Endpoint>> = Vec::with_capacity(answer.instances.len());
        for instance in &answer.instances {
            self.ttls.insert(
                instance.address.clone(),
                Duration::from_millis(instance.ttl_ms),
            );
            self.stale_until.remove(&instance.address);
            next.push(self.listed(view, &current, instance));
        }
        for endpoint in current.iter() {
            let address = endpoint.address();
            if answer.instances.iter().any(|i| i.address == *address) {
                continue;
            }
            let grace = self.ttls.get(address).copied().unwrap_or_default();
            let keep_until = match self.stale_until.get(address) {
                Some(until) => Some(*until),
                None if after_outage => Some(now + grace),
                None => None,
            };
            match keep_until {
                Some(until) if until > now => {
                    self.stale_until.insert(address.clone(), until);
                    next.push(Arc::clone(endpoint));
                }
                _ => self.unlisted(view, endpoint, now),
            }
        }
        self.retired.retain(|_, (_, until)| *until > now);
        next.sort_by_key(|e| e.id());
        let changed = next.len() != current.len()
            || next
                .iter()
                .zip(current.iter())
                .any(|(a, b)| !Arc::ptr_eq(a, b));
        if changed {
            *view
                .endpoints
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Arc::from(next);
        }
    }

    /// The endpoint for a listed instance: the current one, a retired one
    /// coming back, or a new one.
    fn listed(
        &mut self,
        view: &ServiceView,
        current: &[Arc<Endpoint>],
        instance: &Instance,
    ) -> Arc<Endpoint> {
        if let Some(endpoint) = current.iter().find(|e| *e.address() == instance.address) {
            if let Some(t) = endpoint.refresh(&instance.id, instance.registered_at) {
                view.report(endpoint, t);
            }
            return Arc::clone(endpoint);
        }
        let endpoint = match self.retired.remove(&instance.address) {
            Some((endpoint, _)) => endpoint,
            None => Arc::new(Endpoint::new(
                instance.id.clone(),
                instance.address.clone(),
                0,
                self.config.breaker,
            )),
        };
        view.emit(EventKind::InstanceAdded {
            id: instance.id.clone(),
            address: instance.address.clone(),
        });
        tracing::info!(
            "{} instance {} added: {}",
            view.service,
            instance.id,
            instance.address
        );
        if let Some(t) = endpoint.refresh(&instance.id, instance.registered_at) {
            view.report(&endpoint, t);
        }
        endpoint
    }

    fn unlisted(&mut self, view: &ServiceView, endpoint: &Arc<Endpoint>, now: Instant) {
        let address = endpoint.address().clone();
        self.stale_until.remove(&address);
        self.ttls.remove(&address);
        let id = endpoint.id();
        tracing::info!("{} instance {id} removed: {address}", view.service);
        view.emit(EventKind::InstanceRemoved {
            id,
            address: address.clone(),
        });
        let keep = self.config.breaker.max_open_for;
        self.retired
            .insert(address, (Arc::clone(endpoint), now + keep));
    }
}
