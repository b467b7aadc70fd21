//! Bringing an open breaker back: one task per endpoint for its whole life,
//! asleep until the endpoint's breaker opens.
//!
//! While the breaker is open the task wakes when the open time passes (and
//! half-opens it, so dashboards see the change when it happens, not at the
//! next request) or, with health checks, every check interval to ask the
//! instance whether it answers again — an answer half-opens the breaker at
//! once, and a check that goes unanswered tells the breaker the instance
//! is down, not flaky (see [`crate::breaker`]: a flapping instance's
//! answers don't count). While it is half-open, the task sends the single
//! probe itself as a health check, unless a request holds the probe slot or
//! the instance is flapping (then a real request probes). Whatever happens,
//! there is one task per endpoint: however often the breaker cycles, no
//! second task can check the same instance.

use super::ResolverConfig;
use crate::breaker::{Admission, BreakerState};
use crate::endpoint::Endpoint;
use crate::events::EventSink;
use crate::health::HealthChecker;
use crate::wire::{Address, InstanceId};
use std::{
    sync::{Arc, Weak},
    time::Duration,
};
use tokio::{sync::Notify, time::Instant};

/// A new endpoint for `id` at `address`, with `config`'s breaker and
/// latency settings, reporting to `sink`, and its recovery task running.
pub(super) fn new_endpoint(
    id: &InstanceId,
    address: &Address,
    zone: Option<&str>,
    config: &ResolverConfig,
    sink: &EventSink,
    health: Option<Arc<HealthChecker>>,
) -> Arc<Endpoint> {
    let endpoint = Arc::new(Endpoint::new(
        id.clone(),
        address.clone(),
        zone.map(Arc::from),
        0,
        config.breaker,
        config.latency_decay,
        sink.clone(),
    ));
    spawn(&endpoint, health);
    endpoint
}

/// Starts `endpoint`'s recovery task. It holds the endpoint weakly and ends
/// once the endpoint is dropped.
pub(crate) fn spawn(endpoint: &Arc<Endpoint>, health: Option<Arc<HealthChecker>>) {
    tokio::spawn(run(
        Arc::downgrade(endpoint),
        endpoint.wake_handle(),
        health,
    ));
}

async fn run(endpoint: Weak<Endpoint>, wake: Arc<Notify>, checker: Option<Arc<HealthChecker>>) {
    // Checks of an open breaker start an interval apart, start to start:
    // one that times out is soon followed by the next, so a check is often
    // in flight when a paused instance resumes and answers at once. The
    // first waits a whole interval after each opening, so an instance that
    // answers its health checks but failed its calls still stays out a while.
    let mut opening: Option<Instant> = None;
    let mut next_check = Instant::now();
    loop {
        // Registered before the state is read, so a transition between the
        // read and the wait still wakes us.
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let Some(current) = endpoint.upgrade() else {
            return;
        };
        let now = Instant::now();
        // Checked while open whatever it is: an unanswered check is what
        // tells a hung instance from a flaky one.
        let health = checker.as_ref();
        if let Some(until) = current.open_until() {
            if opening != Some(until) {
                opening = Some(until);
                next_check = now + health.map_or(Duration::ZERO, |h| h.interval());
            }
            let check_at = health.map_or(until, |_| until.min(next_check));
            drop(current);
            tokio::select! {
                () = tokio::time::sleep_until(check_at) => {}
                () = &mut woken => continue,
            }
            let Some(current) = endpoint.upgrade() else {
                return;
            };
            let now = Instant::now();
            if now >= until {
                current.poll_breaker(now);
            } else if let Some(health) = health {
                next_check = now + health.interval();
                let answered = health.check(current.address()).await.is_ok();
                current.health_checked(answered);
            }
            continue;
        }
        // A flapping instance answers health checks but fails calls: only
        // a real request may probe it.
        let health = health.filter(|_| current.trusts_health_checks());
        if let (Some(health), BreakerState::HalfOpen) = (health, current.breaker_state(now)) {
            if current.admit(now) == Admission::Probe {
                let started = Instant::now();
                match health.check(current.address()).await {
                    Ok(()) => current.succeeded(
                        Admission::Probe,
                        started.elapsed(),
                        Instant::now(),
                        0,
                        None,
                    ),
                    Err(error) => current.failed(Admission::Probe, error, None, Instant::now()),
                }
                continue;
            }
        }
        // Closed, or half-open with a request probing (or nothing to probe
        // with): nothing to do until the next transition.
        drop(current);
        woken.await;
    }
}
