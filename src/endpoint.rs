//! One instance as the client sees it: its breaker, its record, and the
//! owner of both.
//!
//! An endpoint is the single owner of its breaker: every method that may
//! change the breaker's state reports the change itself — the log line, the
//! event — and wakes the endpoint's one recovery task (see
//! `resolver::recovery`). Callers only ask and tell ("may I send?", "it
//! answered", "it failed"); no transition is handed back for them to pass on.

use crate::breaker::{Admission, Breaker, BreakerConfig, BreakerState, Transition};
use crate::events::{EventKind, EventSink, InstanceSnapshot};
use crate::latency::PeakEwma;
use crate::limit::VegasLimit;
use crate::reported_load::ReportedLoad;
use crate::wire::{Address, InstanceId};
use http::{HeaderValue, Uri};
use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};
use tokio::{
    sync::{watch, Notify},
    time::Instant,
};

/// An instance's address, its current registration, its breaker and stats.
/// Keyed by address: the breaker belongs to the place requests go.
#[derive(Debug)]
pub struct Endpoint {
    address: Address,
    /// The address parsed once, so each attempt builds its URI from shared
    /// parts instead of formatting and parsing text.
    uri: Uri,
    /// The zone it registered in, for zone-aware balancing; fixed for the
    /// endpoint's life (an address registered again elsewhere is a new
    /// instance only once the old one is forgotten).
    zone: Option<Arc<str>>,
    state: Mutex<EndpointState>,
    /// Where transitions are reported.
    sink: EventSink,
    /// Woken on every transition (and when the endpoint goes away), so the
    /// recovery task sleeps until there is something to do.
    wake: Arc<Notify>,
    /// Attempts sent here and not yet ended: the balancer weighs latency by
    /// it. An atomic, so counting costs no lock.
    in_flight: AtomicU32,
    /// The calls it can take at once, as learned from its answers (see
    /// [`limit`](crate::limit)): a copy of the state's, readable without
    /// the lock by every pick of a client that keeps to it.
    learned_limit: AtomicU32,
    /// Whether a client keeps to the learned limit: until one does, its
    /// answers are not spent on learning it (a few hundred instructions a
    /// call that nobody would read).
    learning: AtomicBool,
    /// Decay time of the latency estimate.
    latency_decay: Duration,
}

/// What the latency-aware balancer weighs an admissible endpoint by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Load {
    /// Latency estimate in nanoseconds; `None` while unmeasured.
    pub(crate) latency_ns: Option<f64>,
    /// Attempts in flight.
    pub(crate) in_flight: u32,
    /// How long it has been warming up (new, or back from an open
    /// breaker); `None`: warm.
    pub(crate) warming_for: Option<Duration>,
    /// The utilization it reports of itself, once believed (see
    /// [`reported_load`](crate::reported_load)); `None` otherwise.
    pub(crate) utilization: Option<f64>,
}

/// An attempt counted in flight on its endpoint until dropped. Claimed
/// before the attempt is sent (by the balancer, when it picks), so a cap
/// on calls in flight holds however many callers pick at once: the count
/// and the check are one atomic step.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Endpoint>);

impl InFlight {
    /// Counts an attempt on `endpoint`.
    pub(crate) fn count(endpoint: &Arc<Endpoint>) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(endpoint))
    }

    /// Counts an attempt on `endpoint` unless `limit` are in flight there
    /// already (no limit: always).
    pub(crate) fn claim(endpoint: &Arc<Endpoint>, limit: Option<u32>) -> Option<Self> {
        let Some(limit) = limit else {
            return Some(Self::count(endpoint));
        };
        endpoint
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(Arc::clone(endpoint)))
    }

    /// The endpoint it counts on.
    pub(crate) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct EndpointState {
    id: InstanceId,
    /// When the registry last saw it register (ms since the Unix epoch): a
    /// new value means it registered anew.
    registered_at: u64,
    breaker: Breaker,
    successes: u64,
    failures: u64,
    last_error: Option<String>,
    latency: PeakEwma,
    /// Whether the service's ejection count includes this endpoint (its
    /// breaker is not closed).
    counted_out: bool,
    /// How many calls it can take at once, learned from its answers.
    limit: VegasLimit,
    /// Since when it warms up (it joined a view that was already in use,
    /// or its breaker closed): callers with slow start send it less until
    /// their window has passed. `None`: warm.
    warming_since: Option<Instant>,
    /// The load it reports on its answers.
    reported: ReportedLoad,
}

impl Endpoint {
    /// A new endpoint with a closed breaker, reporting to `sink`.
    pub(crate) fn new(
        id: InstanceId,
        address: Address,
        zone: Option<Arc<str>>,
        registered_at: u64,
        config: BreakerConfig,
        latency_decay: Duration,
        sink: EventSink,
    ) -> Self {
        // A valid `Address` is a valid absolute URI (`Address::new` parsed
        // it); the fallback only keeps this constructor total.
        let uri = address.as_str().parse().unwrap_or_default();
        Self {
            address,
            uri,
            zone,
            state: Mutex::new(EndpointState {
                id,
                registered_at,
                breaker: Breaker::new(config),
                successes: 0,
                failures: 0,
                last_error: None,
                latency: PeakEwma::default(),
                counted_out: false,
                limit: VegasLimit::default(),
                warming_since: None,
                reported: ReportedLoad::default(),
            }),
            sink,
            wake: Arc::new(Notify::new()),
            in_flight: AtomicU32::new(0),
            learned_limit: AtomicU32::new(VegasLimit::default().get()),
            learning: AtomicBool::new(false),
            latency_decay,
        }
    }

    /// The zone it registered in (its `zone` metadata), if any.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    /// Where requests go.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The address as a URI: scheme, authority and any path prefix of
    /// every request sent here.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The instance id registered at this address.
    pub fn id(&self) -> InstanceId {
        self.lock().id.clone()
    }

    /// The breaker's state now.
    pub(crate) fn breaker_state(&self, now: Instant) -> BreakerState {
        self.lock().breaker.state(now)
    }

    /// When the breaker, if open, will half-open.
    pub(crate) fn open_until(&self) -> Option<Instant> {
        self.lock().breaker.open_until()
    }

    /// Updates the registration seen for this address; an instance that
    /// registered anew is alive (see [`Breaker::registered_anew`]).
    pub(crate) fn refresh(&self, id: &InstanceId, registered_at: u64) {
        self.change(|state| {
            if state.id != *id {
                state.id = id.clone();
            }
            if state.registered_at == registered_at {
                return ((), None);
            }
            state.registered_at = registered_at;
            ((), state.breaker.registered_anew())
        });
    }

    /// Whether health checks may bring this instance back (its breaker is
    /// not flapping: see [`Breaker::is_flapping`]).
    pub(crate) fn trusts_health_checks(&self) -> bool {
        !self.lock().breaker.is_flapping()
    }

    /// A health check ended, `answered` or not, while its breaker was open
    /// (see [`Breaker::health_checked`]).
    pub(crate) fn health_checked(&self, answered: bool) {
        self.change(|state| ((), state.breaker.health_checked(answered)));
    }

    /// Asks the breaker whether a request may go here now.
    pub(crate) fn admit(&self, now: Instant) -> Admission {
        self.change(|state| state.breaker.admit(now))
    }

    /// Its load, if the breaker would admit a request now (a look: nothing
    /// is reserved, nothing changes); `None` if it would not.
    pub(crate) fn load(&self, now: Instant) -> Option<Load> {
        let state = self.lock();
        state.breaker.admits(now).then(|| Load {
            latency_ns: state.latency.estimate(now, self.latency_decay),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            warming_for: state
                .warming_since
                .map(|since| now.saturating_duration_since(since)),
            utilization: state.reported.utilization(now),
        })
    }

    /// It starts warming up now: a new instance of a view already in use
    /// (see [`SlowStart`](crate::client::SlowStart)).
    pub(crate) fn start_warming(&self, now: Instant) {
        self.lock().warming_since = Some(now);
    }

    /// Attempts in flight to it now.
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The calls it can take at once, as learned from its answers; from
    /// this first read on, its answers teach it.
    pub(crate) fn learned_limit(&self) -> u32 {
        if !self.learning.load(Ordering::Relaxed) {
            self.learning.store(true, Ordering::Relaxed);
        }
        self.learned_limit.load(Ordering::Relaxed)
    }

    /// Whether its answers teach its limit (some client keeps to it).
    fn learning(&self) -> bool {
        self.learning.load(Ordering::Relaxed)
    }

    /// Whether the breaker would admit a request now (a look: nothing is
    /// reserved, nothing changes).
    pub(crate) fn admissible(&self, now: Instant) -> bool {
        self.lock().breaker.admits(now)
    }

    /// Changes of this service's breakers and instances, for whoever waits
    /// for one to become ready.
    pub(crate) fn changes(&self) -> watch::Receiver<()> {
        self.sink.changes()
    }

    /// Moves an open breaker whose time has passed to HalfOpen.
    pub(crate) fn poll_breaker(&self, now: Instant) {
        self.change(|state| ((), state.breaker.poll(now)));
    }

    /// Records a success of a request admitted as `admission`, answered in
    /// `latency` (as of `now`), sent with `sent_with` in flight (itself
    /// included; 0 for a health check, which says nothing of the limit),
    /// with `report` (its `endpoint-load-metrics` header, if any). A
    /// breaker that closes forgets the latency and the reports it knew:
    /// the instance starts again from a neutral score (see
    /// `client::balance`), neither flooded as if free nor starved for its
    /// old slowness.
    pub(crate) fn succeeded(
        &self,
        admission: Admission,
        latency: Duration,
        now: Instant,
        sent_with: u32,
        report: Option<&HeaderValue>,
    ) {
        let decay = self.latency_decay;
        self.change(|state| {
            state.successes += 1;
            let transition = state.breaker.record_success(admission);
            if transition == Some(Transition::Closed) {
                state.latency.reset();
                state.reported.reset();
                // Back from an open breaker: cold again.
                state.warming_since = Some(now);
            }
            state.latency.observe(latency, now, decay);
            state.reported.observe(report, now);
            if self.learning() {
                let limit = state.limit.answered(latency, sent_with);
                self.learned_limit.store(limit, Ordering::Relaxed);
            }
            ((), transition)
        });
    }

    /// Records a failure (timeout, connect error, 5xx) of a request
    /// admitted as `admission`. A timeout (`took`: how long it waited)
    /// slower than the latency estimate raises it (see
    /// [`PeakEwma::observe_failure`]), so that the balancer keeps away from
    /// an instance whose calls time out even while its breaker is still
    /// closed; other failures (`None`) say nothing about its speed.
    ///
    /// [`PeakEwma::observe_failure`]: crate::latency::PeakEwma::observe_failure
    pub(crate) fn failed(
        &self,
        admission: Admission,
        error: String,
        took: Option<Duration>,
        now: Instant,
    ) {
        let ejections = self.sink.ejections();
        let decay = self.latency_decay;
        self.change(|state| {
            state.failures += 1;
            state.last_error = Some(error);
            if let Some(took) = took {
                state.latency.observe_failure(took, now, decay);
                // Timed out: as full as one that sheds.
                if self.learning() {
                    self.learned_limit
                        .store(state.limit.dropped(), Ordering::Relaxed);
                }
            }
            let may_eject = ejections.may_eject(state.breaker.config().max_ejected);
            ((), state.breaker.record_failure(admission, now, may_eject))
        });
    }

    /// The instance shed an attempt admitted as `admission` (503 with
    /// `Retry-After`): it is full, not broken. No verdict on the breaker;
    /// the learned limit backs off.
    pub(crate) fn busy(&self, admission: Admission) {
        if self.learning() {
            let limit = self.lock().limit.dropped();
            self.learned_limit.store(limit, Ordering::Relaxed);
        }
        self.release(admission);
    }

    /// An attempt ended without a verdict: free the probe slot if it held
    /// it, and let the recovery task probe instead.
    pub(crate) fn release(&self, admission: Admission) {
        if admission == Admission::Probe {
            self.lock().breaker.release_probe();
            self.sink.signal_change();
            self.wake.notify_one();
        }
    }

    /// A snapshot for dashboards.
    pub(crate) fn snapshot(&self, now: Instant) -> InstanceSnapshot {
        let state = self.lock();
        InstanceSnapshot {
            id: state.id.clone(),
            address: self.address.clone(),
            breaker: state.breaker.state(now),
            successes: state.successes,
            failures: state.failures,
            last_error: state.last_error.clone(),
            latency_ms: state
                .latency
                .estimate(now, self.latency_decay)
                .map(|ns| ns / 1e6),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            learned_limit: state.limit.get(),
            reported_utilization: state.reported.latest(),
            zone: self.zone.as_deref().map(str::to_owned),
            dc: None,
        }
    }

    /// What wakes this endpoint's recovery task.
    pub(crate) fn wake_handle(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Runs `f` on the state under the lock; reports the transition it
    /// made, if any, once the lock is released.
    fn change<R>(&self, f: impl FnOnce(&mut EndpointState) -> (R, Option<Transition>)) -> R {
        let (result, report) = {
            let mut state = self.lock();
            let (result, transition) = f(&mut state);
            if transition.is_some() {
                self.count_ejection(&mut state);
            }
            let report = transition.map(|t| (t, state.id.clone(), state.last_error.clone()));
            (result, report)
        };
        if let Some((transition, id, last_error)) = report {
            self.report(transition, id, last_error);
        }
        result
    }

    /// Keeps the service's count of instances out in step with this
    /// breaker: out while not closed.
    fn count_ejection(&self, state: &mut EndpointState) {
        let out = !state.breaker.is_closed();
        if out != state.counted_out {
            state.counted_out = out;
            if out {
                self.sink.ejections().went_out();
            } else {
                self.sink.ejections().came_back();
            }
        }
    }

    /// The event (and the walkthrough's log line) for `transition`; wakes
    /// the recovery task.
    fn report(&self, transition: Transition, id: InstanceId, last_error: Option<String>) {
        let address = self.address.clone();
        let kind = match transition {
            Transition::Opened(open_for) => EventKind::BreakerOpened {
                id,
                address,
                open_for_ms: u64::try_from(open_for.as_millis()).unwrap_or(u64::MAX),
                error: last_error.unwrap_or_default(),
            },
            Transition::HalfOpened => EventKind::BreakerHalfOpened { id, address },
            Transition::Closed => EventKind::BreakerClosed { id, address },
        };
        self.sink.emit(kind);
        self.sink.signal_change();
        self.wake.notify_one();
    }

    /// Plain data, valid at every step: a poisoned lock is safe to reuse.
    fn lock(&self) -> MutexGuard<'_, EndpointState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Endpoint {
    /// Lets the recovery task see that its endpoint is gone, and end; an
    /// instance gone is no longer out.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if state.counted_out {
            self.sink.ejections().came_back();
        }
        self.wake.notify_one();
    }
}
