//! The breaker as a readiness gate in front of one endpoint: open means
//! not ready.
//!
//! `poll_ready` asks the endpoint's breaker for admission and holds it until
//! `call` spends it; with the breaker open it returns `Pending` and wakes
//! when any breaker of the service changes, as linkerd's gate does. So a
//! gated endpoint can sit in any tower balancer (see
//! [`ViewDiscover`](super::ViewDiscover)), which then routes around it
//! without knowing what a breaker is. The gate only reads and reserves;
//! what an attempt did is recorded by [`Attempt`](super::Attempt).

use super::{Admitted, Call};
use crate::breaker::Admission;
use crate::endpoint::{Endpoint, InFlight};
use std::{
    sync::Arc,
    task::{ready, Context, Poll},
};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::ReusableBoxFuture;

/// Waits for the next change of a service's breakers or instances.
pub(super) type ChangeWait = ReusableBoxFuture<'static, watch::Receiver<()>>;

/// A future that resolves at the next change seen by `changes`.
pub(super) fn next_change(changes: watch::Receiver<()>) -> ChangeWait {
    ReusableBoxFuture::new(changed(changes))
}

/// The next change; gives the receiver back for the wait after it.
async fn changed(mut changes: watch::Receiver<()>) -> watch::Receiver<()> {
    // A closed channel means the view is gone: "never ready again" is the
    // truth then, so waiting forever is right.
    if changes.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
    changes
}

/// Polls `wait` (made on first use from `subscribe`); `Ready` once
/// something changed, to be checked again.
pub(super) fn poll_change(
    wait: &mut Option<ChangeWait>,
    subscribe: impl FnOnce() -> watch::Receiver<()>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let Some(waiting) = wait else {
        // Subscribed only now: the caller checks once more before
        // waiting, so a change between its check and this is not lost.
        *wait = Some(next_change(subscribe()));
        return Poll::Ready(());
    };
    let changes = ready!(waiting.poll(cx));
    waiting.set(changed(changes));
    Poll::Ready(())
}

/// Admission to `endpoint` now, or `None` while its breaker is open (or
/// its one probe is out).
pub(crate) fn admit(endpoint: &Endpoint, now: Instant) -> Option<Admission> {
    match endpoint.admit(now) {
        Admission::Rejected => None,
        admission => Some(admission),
    }
}

/// One endpoint behind its breaker.
#[derive(Debug)]
pub struct BreakerGate<S> {
    endpoint: Arc<Endpoint>,
    inner: S,
    /// Reserved by `poll_ready`, spent by `call`; given back if the gate is
    /// dropped unused, so a probe slot can't leak.
    admission: Option<Admission>,
    /// Set while waiting for the breaker to change.
    wait: Option<ChangeWait>,
}

impl<S> BreakerGate<S> {
    /// `inner`, gated by `endpoint`'s breaker.
    pub fn new(endpoint: Arc<Endpoint>, inner: S) -> Self {
        Self {
            endpoint,
            inner,
            admission: None,
            wait: None,
        }
    }

    /// The endpoint gated.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl<S> tower::Service<Call> for BreakerGate<S>
where
    S: tower::Service<Admitted>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        loop {
            if self.admission.is_none() {
                self.admission = admit(&self.endpoint, Instant::now());
            }
            if self.admission.is_some() {
                self.wait = None;
                return self.inner.poll_ready(cx);
            }
            let endpoint = &self.endpoint;
            ready!(poll_change(&mut self.wait, || endpoint.changes(), cx));
        }
    }

    /// Sends `call` on the admission `poll_ready` reserved. Called without
    /// one (against tower's contract), it asks the breaker now and sends as
    /// a normal request if refused: the attempt's verdict still counts.
    fn call(&mut self, call: Call) -> S::Future {
        let admission = self
            .admission
            .take()
            .or_else(|| admit(&self.endpoint, Instant::now()))
            .unwrap_or(Admission::Admitted);
        self.inner.call(Admitted {
            call,
            admission,
            in_flight: InFlight::count(&self.endpoint),
        })
    }
}

impl<S> Drop for BreakerGate<S> {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.take() {
            self.endpoint.release(admission);
        }
    }
}
