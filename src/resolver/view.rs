//! One service's live instances, shared by every caller of the service.

use super::{poll::Poller, recovery, ResolverConfig, ResolverShared};
use crate::endpoint::Endpoint;
use crate::events::{Event, EventKind, EventSink, ServiceSnapshot};
use crate::wire::{Address, InstanceId, ServiceName};
use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc, Mutex, PoisonError, RwLock,
};
use tokio::{
    sync::{broadcast, watch},
    task::JoinHandle,
    time::Instant,
};

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
    /// Why the last registry call failed (`None` after one succeeded): what
    /// a call that found the view never synced says, rather than "no
    /// instances".
    registry_error: Mutex<Option<String>>,
    sink: EventSink,
    /// The long poll that keeps this view fresh; aborted with the view.
    poller: Mutex<Option<JoinHandle<()>>>,
}

impl ServiceView {
    /// A view of `service`, kept fresh by a poll task that lives as long
    /// as the view.
    pub(super) fn start(service: ServiceName, resolver: &ResolverShared) -> Arc<Self> {
        let view = Arc::new(Self {
            sink: EventSink::new(service.clone(), resolver.events.clone()),
            service,
            endpoints: RwLock::new(Arc::from(Vec::new())),
            cursor: AtomicUsize::new(0),
            reachable: AtomicBool::new(true),
            synced: watch::Sender::new(false),
            registry_error: Mutex::new(None),
            poller: Mutex::new(None),
        });
        let poller = Poller::new(&view, resolver);
        let task = tokio::spawn(poller.run());
        *view.poller.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        view
    }

    /// A view of a fixed list of instances with no registry behind it: for
    /// static configurations, and for tests on tokio's paused clock.
    /// Breakers and their recovery work as in any view (each endpoint's
    /// recovery task half-opens its breaker when the open time has passed);
    /// there are no health checks. Events go to [`subscribe`](Self::subscribe).
    /// Call inside a tokio runtime.
    /// Of `config`, the breaker, latency and event settings apply.
    pub fn fixed(
        service: ServiceName,
        instances: &[(InstanceId, Address)],
        config: &ResolverConfig,
    ) -> Arc<Self> {
        let zoneless: Vec<_> = instances
            .iter()
            .map(|(id, address)| (id.clone(), address.clone(), None))
            .collect();
        Self::fixed_in_zones(service, &zoneless, config)
    }

    /// The same, each instance in the zone given with it, if any.
    pub fn fixed_in_zones(
        service: ServiceName,
        instances: &[(InstanceId, Address, Option<String>)],
        config: &ResolverConfig,
    ) -> Arc<Self> {
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let sink = EventSink::new(service.clone(), events);
        let endpoints = instances
            .iter()
            .map(|(id, address, zone)| {
                recovery::new_endpoint(id, address, zone.as_deref(), config, &sink, None)
            })
            .collect::<Vec<_>>();
        sink.ejections().set_total(endpoints.len());
        Arc::new(Self {
            sink,
            service,
            endpoints: RwLock::new(Arc::from(endpoints)),
            cursor: AtomicUsize::new(0),
            reachable: AtomicBool::new(true),
            synced: watch::Sender::new(true),
            registry_error: Mutex::new(None),
            poller: Mutex::new(None),
        })
    }

    /// Events of this view's service — and, for a view from a
    /// [`Resolver`](super::Resolver), of every service it resolves (the
    /// same as [`Resolver::subscribe`](super::Resolver::subscribe)).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sink.subscribe()
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
    pub(crate) fn registry_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Waits for the first registry answer until `deadline`. Returns whether
    /// it came.
    pub(crate) async fn wait_synced(&self, deadline: Instant) -> bool {
        if *self.synced.borrow() {
            return true;
        }
        let mut synced = self.synced.subscribe();
        tokio::time::timeout_at(deadline, synced.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether the first registry answer has arrived.
    pub(crate) fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Changes of this service's instances and breakers (a signal, no
    /// data: look at [`endpoints`](Self::endpoints) when it fires).
    pub(crate) fn changes(&self) -> watch::Receiver<()> {
        self.sink.changes()
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

    /// Where this service's endpoints report.
    pub(super) fn sink(&self) -> &EventSink {
        &self.sink
    }

    /// Puts `endpoints` in use.
    pub(super) fn replace(&self, endpoints: Vec<Arc<Endpoint>>) {
        let count = endpoints.len();
        *self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::from(endpoints);
        self.sink.ejections().set_total(count);
        self.sink.signal_change();
    }

    /// The first registry answer arrived.
    pub(super) fn mark_synced(&self) {
        self.synced.send_replace(true);
        self.sink.signal_change();
    }

    /// Records whether the registry answered; logs and broadcasts changes.
    /// Why the last registry call for this view failed; `None` once one
    /// succeeded (or for a fixed view).
    pub(crate) fn registry_error(&self) -> Option<String> {
        self.registry_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_reachable(&self, reachable: bool, error: Option<String>) {
        *self
            .registry_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error.clone();
        if self.reachable.swap(reachable, Ordering::Relaxed) == reachable {
            return;
        }
        if reachable {
            self.sink.emit(EventKind::RegistryRegained);
        } else {
            let error = error.unwrap_or_default();
            self.sink.emit(EventKind::RegistryLost { error });
        }
    }
}

impl Drop for ServiceView {
    fn drop(&mut self) {
        let task = self
            .poller
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}
