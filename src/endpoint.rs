//! One instance as the client sees it: its breaker and its record.

use crate::breaker::{Admission, Breaker, BreakerConfig, Transition};
use crate::events::InstanceSnapshot;
use crate::wire::{Address, InstanceId};
use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

/// How much a new latency sample moves the average.
const LATENCY_WEIGHT: f64 = 0.2;

/// An instance's address, its current registration, its breaker and stats.
/// Keyed by address: the breaker belongs to the place requests go.
#[derive(Debug)]
pub struct Endpoint {
    address: Address,
    state: Mutex<EndpointState>,
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
    latency_ms: Option<f64>,
}

impl Endpoint {
    /// A new endpoint with a closed breaker.
    pub fn new(
        id: InstanceId,
        address: Address,
        registered_at: u64,
        config: BreakerConfig,
    ) -> Self {
        Self {
            address,
            state: Mutex::new(EndpointState {
                id,
                registered_at,
                breaker: Breaker::new(config),
                successes: 0,
                failures: 0,
                last_error: None,
                latency_ms: None,
            }),
        }
    }

    /// Where requests go.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The instance id registered at this address.
    pub fn id(&self) -> InstanceId {
        self.lock().id.clone()
    }

    /// Updates the registration seen for this address. Returns the breaker
    /// transition if the instance registered anew (see
    /// [`Breaker::seen_alive`]).
    pub fn refresh(&self, id: &InstanceId, registered_at: u64) -> Option<Transition> {
        let mut state = self.lock();
        if state.id != *id {
            state.id = id.clone();
        }
        if state.registered_at == registered_at {
            return None;
        }
        state.registered_at = registered_at;
        state.breaker.seen_alive()
    }

    /// The instance answered a health check while its breaker was open.
    pub fn seen_alive(&self) -> Option<Transition> {
        self.lock().breaker.seen_alive()
    }

    /// Asks the breaker whether a request may go here now.
    pub fn admit(&self, now: Instant) -> (Admission, Option<Transition>) {
        self.lock().breaker.admit(now)
    }

    /// Moves an open breaker whose time has passed to HalfOpen.
    pub fn poll_breaker(&self, now: Instant) -> Option<Transition> {
        self.lock().breaker.poll(now)
    }

    /// When the breaker, if open, will half-open.
    pub fn open_until(&self) -> Option<Instant> {
        self.lock().breaker.open_until()
    }

    /// Records a success.
    pub fn succeeded(&self, admission: Admission, latency: Duration) -> Option<Transition> {
        let mut state = self.lock();
        state.successes += 1;
        let sample = latency.as_secs_f64() * 1000.0;
        state.latency_ms = Some(match state.latency_ms {
            None => sample,
            Some(avg) => avg + LATENCY_WEIGHT * (sample - avg),
        });
        state.breaker.record_success(admission)
    }

    /// Records a failure.
    pub fn failed(&self, admission: Admission, error: String, now: Instant) -> Option<Transition> {
        let mut state = self.lock();
        state.failures += 1;
        state.last_error = Some(error);
        state.breaker.record_failure(admission, now)
    }

    /// An attempt ended without a verdict: free the probe slot if it held it.
    pub fn release(&self, admission: Admission) {
        if admission == Admission::Probe {
            self.lock().breaker.release_probe();
        }
    }

    /// The last recorded error.
    pub fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    /// A snapshot for dashboards.
    pub fn snapshot(&self, now: Instant) -> InstanceSnapshot {
        let state = self.lock();
        InstanceSnapshot {
            id: state.id.clone(),
            address: self.address.clone(),
            breaker: state.breaker.state(now),
            successes: state.successes,
            failures: state.failures,
            last_error: state.last_error.clone(),
            latency_ms: state.latency_ms,
        }
    }

    /// Plain data, valid at every step: a poisoned lock is safe to reuse.
    fn lock(&self) -> MutexGuard<'_, EndpointState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
