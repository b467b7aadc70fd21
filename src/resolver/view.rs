//! One service's live instances, shared by every caller of the service.

use super::{poll::Poller, ResolverShared};
use crate::endpoint::Endpoint;
use crate::events::{EventKind, EventSink, ServiceSnapshot};
use crate::wire::ServiceName;
use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc, Mutex, PoisonError, RwLock,
};
use tokio::{sync::watch, task::JoinHandle, time::Instant};

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
            poller: Mutex::new(None),
        });
        let poller = Poller::new(&view, resolver);
        let task = tokio::spawn(poller.run());
        *view.poller.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
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

    /// Where this service's endpoints report.
    pub(super) fn sink(&self) -> &EventSink {
        &self.sink
    }

    /// Puts `endpoints` in use.
    pub(super) fn replace(&self, endpoints: Vec<Arc<Endpoint>>) {
        *self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::from(endpoints);
    }

    /// The first registry answer arrived.
    pub(super) fn mark_synced(&self) {
        self.synced.send_replace(true);
    }

    /// Records whether the registry answered; logs and broadcasts changes.
    pub(super) fn set_reachable(&self, reachable: bool, error: Option<String>) {
        if self.reachable.swap(reachable, Ordering::Relaxed) == reachable {
            return;
        }
        let service = &self.service;
        if reachable {
            tracing::info!("registry reachable again; {service} view is live");
            self.sink.emit(EventKind::RegistryRegained);
        } else {
            let error = error.unwrap_or_default();
            tracing::warn!("registry unreachable; using last-known {service} instances: {error}");
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
