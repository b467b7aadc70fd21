//! Spreading calls over a service's admitted endpoints, read from the
//! shared view without locks held across an await.
//!
//! Readiness and routing are one decision, as in tower's `p2c`:
//! `poll_ready` takes the view's current list (an `Arc` clone), chooses an
//! instance whose breaker admits a request and claims it (admission
//! reserved, place in flight counted); `call` spends that choice. A retry
//! or a hedge, which must go where its call has not been, chooses again in
//! `call` (giving the first choice back). tower's `ReadyCache` would hold
//! every endpoint's service and poll them all; the view already knows each
//! breaker's state, so one look per candidate does.
//!
//! Two ways to choose ([`Balancing`]):
//!
//! * **least loaded** (the default): power of two choices, as linkerd2 and
//!   tower's `p2c` do — two distinct instances drawn at random, the one with
//!   the lower latency estimate × (calls in flight + 1) wins, unless the two
//!   are within a factor of 1.5 of each other: then the first drawn (see
//!   [`latency`](crate::latency)). A slow instance loses nearly every draw it
//!   is in, yet two random draws keep equal instances evenly loaded and no
//!   single instance flooded. An instance with no estimate yet (new, or its
//!   breaker just closed) scores as its rival does: neutral, neither flooded
//!   as if free nor starved. When neither drawn instance can take the call,
//!   the walk below finds one that can.
//! * **round robin**: in turn from a shared cursor, the first that admits.
//!
//! `poll_ready` tells the truth: `Pending` until the view has its first
//! registry answer and while no endpoint would admit a request, woken by
//! the next change of an instance or breaker. Wrapped in
//! [`FailFast`](super::FailFast) it sheds instead, as tower's load-shed
//! does: what [`ServiceClient::send`](super::ServiceClient::send) and its
//! retries want.

use super::{
    fail_fast::Unavailable, gate, hedge::Placed, site, zone, Admitted, Call, ClientError, Limits,
    RemoteSite, ResponseBody, SlowStart,
};
use p2c::{claim, least_loaded_of_two};
mod p2c;

use crate::breaker::Admission;
use crate::endpoint::{Endpoint, InFlight};
use crate::resolver::ServiceView;
use crate::wire::Address;
use futures_util::future::{self, Either, FutureExt, Ready};
use http::Response;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};
use tokio::time::Instant;

/// Makes the service that carries calls to one endpoint, behind its gate
/// (for Beacon's client, an [`Attempt`](super::Attempt) over a transport).
pub trait NewEndpointService {
    /// The service made.
    type Service: tower::Service<Admitted, Response = Response<ResponseBody>, Error = ClientError>;

    /// The service for `endpoint`. Called per attempt: keep it cheap.
    fn new_service(&self, endpoint: Arc<Endpoint>) -> Self::Service;
}

/// Whether an instance not in `tried` would admit a request now (nothing
/// is reserved: a look, not a claim).
pub(crate) fn has_candidate(view: &ServiceView, tried: &[Address]) -> bool {
    let now = Instant::now();
    view.endpoints()
        .iter()
        .any(|e| !tried.contains(e.address()) && e.admissible(now))
}

/// How a call chooses among the instances that may take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balancing {
    /// Power of two choices by latency estimate × calls in flight: routes
    /// around slow instances, not only failed ones. The default.
    #[default]
    LeastLoaded,
    /// In turn: every admitted instance gets the same share, however slow.
    RoundRobin,
}

/// Spreads calls over one service's admitted endpoints.
#[derive(Debug)]
pub struct Balance<N> {
    /// What every clone shares and never changes once built: one pointer
    /// to copy, since the client clones its balancer on every call (tower's
    /// `Retry` does, and a hedge keeps one in case it goes).
    setup: Arc<Setup<N>>,
    /// The endpoint `poll_ready` chose for the next call.
    picked: Option<Picked>,
    /// Set while `poll_ready` waits for a change.
    wait: Option<gate::ChangeWait>,
}

/// An endpoint chosen for a call: its breaker's admission reserved and its
/// place in flight claimed. Given back if dropped unspent, so a half-open
/// breaker's one probe can't leak.
#[derive(Debug)]
struct Picked {
    /// `Some` until spent.
    claim: Option<(Admission, InFlight)>,
}

impl Picked {
    fn spend(mut self) -> Option<(Admission, InFlight)> {
        self.claim.take()
    }
}

impl Drop for Picked {
    fn drop(&mut self) {
        if let Some((admission, in_flight)) = self.claim.take() {
            in_flight.endpoint().release(admission);
        }
    }
}

/// A balancer's settings and the view it balances over.
#[derive(Debug, Clone)]
struct Setup<N> {
    view: Arc<ServiceView>,
    new_service: N,
    balancing: Balancing,
    /// How many attempts may be in flight to one endpoint.
    limits: Limits,
    /// How an endpoint warming up is weighed; `None`: as a warm one.
    slow_start: Option<SlowStart>,
    /// Whether the load endpoints report weighs (see
    /// [`reported_load`](crate::reported_load)).
    load_reports: bool,
    /// The caller's zone, whose instances it prefers (see
    /// [`zone`](super::zone)); `None`: every zone alike.
    zone: Option<Arc<str>>,
    /// Other sites' views of the service, for what the own site can't
    /// take (see [`site`](super::site)); empty: one site.
    remote: Arc<[RemoteSite]>,
}

impl<N> Setup<N> {
    fn new(view: Arc<ServiceView>, new_service: N) -> Self {
        Self {
            view,
            new_service,
            balancing: Balancing::default(),
            limits: Limits::default(),
            slow_start: None,
            load_reports: true,
            zone: None,
            remote: Arc::from(Vec::new()),
        }
    }
}

impl<N> Balance<N> {
    /// A balancer over `view`, reaching each endpoint through the service
    /// `new_service` makes for it.
    pub fn new(view: Arc<ServiceView>, new_service: N) -> Self {
        Self::of(Setup::new(view, new_service))
    }

    fn of(setup: Setup<N>) -> Self {
        Self {
            setup: Arc::new(setup),
            picked: None,
            wait: None,
        }
    }
}

impl<N: Clone> Balance<N> {
    /// The same, for a caller in `zone`: instances there are preferred (see
    /// [`zone`](super::zone)).
    pub fn zone(self, zone: Option<&str>) -> Self {
        self.with(|setup| setup.zone = zone.map(Arc::from))
    }

    /// The same, choosing by `balancing`.
    pub fn balancing(self, balancing: Balancing) -> Self {
        self.with(|setup| setup.balancing = balancing)
    }

    /// The same, with at most `limit` attempts in flight to any one
    /// endpoint (`None`: no cap). An endpoint at its cap is passed over;
    /// with every one that would admit the call at its cap, the call fails
    /// at once with [`ClientError::AllAtCapacity`] — a bulkhead, not a
    /// queue.
    pub fn max_in_flight(self, limit: Option<u32>) -> Self {
        self.with(|setup| setup.limits.max_in_flight = limit)
    }

    /// The same, weighing endpoints that warm up as `slow_start` says
    /// (`None`: as warm ones).
    pub fn slow_start(self, slow_start: Option<SlowStart>) -> Self {
        self.with(|setup| setup.slow_start = slow_start)
    }

    /// The same, failing over to `remote` sites when the view's own can't
    /// take a call (see [`site`](super::site)).
    pub fn remote_sites(self, remote: Arc<[RemoteSite]>) -> Self {
        self.with(|setup| setup.remote = remote)
    }

    /// The same, weighing the load endpoints report (`true`, the default)
    /// or not.
    pub fn load_reports(self, on: bool) -> Self {
        self.with(|setup| setup.load_reports = on)
    }

    /// The same, capping endpoints as `limits` say: a fixed cap, each
    /// endpoint's learned limit, or both (see [`Limits`]).
    pub fn limits(self, limits: Limits) -> Self {
        self.with(|setup| setup.limits = limits)
    }

    /// The same with `change` made to the settings (copied first if a clone
    /// shares them).
    fn with(mut self, change: impl FnOnce(&mut Setup<N>)) -> Self {
        change(Arc::make_mut(&mut self.setup));
        self
    }
}

impl<N> Balance<N> {
    /// An endpoint for a call that has tried `tried` (none for a first
    /// attempt), as of `now`: its admission reserved and its place in
    /// flight claimed.
    fn pick(&self, tried: &[Address], now: Instant) -> Option<Picked> {
        let own = self.setup.view.endpoints();
        let remote = &self.setup.remote;
        if remote.is_empty() {
            return self.pick_in_own_site(&own, tried, now);
        }
        let keeps_local = site::keeps_local(&own, now);
        if keeps_local {
            if let Some(picked) = self.pick_in_own_site(&own, tried, now) {
                return Some(picked);
            }
        }
        for site in site::nearest_first(remote, now) {
            if let Some(claim) = self.pick_among(&site.view.endpoints(), tried, now) {
                return Some(Picked { claim: Some(claim) });
            }
        }
        // Spilled over, and no other site could take it: home after all.
        if keeps_local {
            None
        } else {
            self.pick_in_own_site(&own, tried, now)
        }
    }

    /// An endpoint of the view's own site (its `endpoints`), zone-aware.
    fn pick_in_own_site(
        &self,
        endpoints: &[Arc<Endpoint>],
        tried: &[Address],
        now: Instant,
    ) -> Option<Picked> {
        if endpoints.is_empty() {
            return None;
        }
        // A retry or a hedge chooses among every zone: its call has found
        // trouble already, and a zone that just went down entirely would
        // otherwise get every retry too.
        if let (Some(zone), true) = (&self.setup.zone, tried.is_empty()) {
            let preferred = zone::preferred(endpoints, zone, now);
            if let Some(claim) = self.pick_among(&preferred, tried, now) {
                return Some(Picked { claim: Some(claim) });
            }
        }
        let claim = self.pick_among(endpoints, tried, now)?;
        Some(Picked { claim: Some(claim) })
    }

    /// An endpoint not in `tried` among `endpoints`, as [`Balancing`]
    /// says.
    fn pick_among(
        &self,
        endpoints: &[Arc<Endpoint>],
        tried: &[Address],
        now: Instant,
    ) -> Option<(Admission, InFlight)> {
        if endpoints.is_empty() {
            return None;
        }
        let drawn = match self.setup.balancing {
            Balancing::LeastLoaded => least_loaded_of_two(endpoints, tried, now, &self.setup),
            Balancing::RoundRobin => None,
        };
        drawn.or_else(|| self.next_in_turn(endpoints, tried, now))
    }

    /// The next admitted endpoint in round-robin order, not in `tried`.
    fn next_in_turn(
        &self,
        endpoints: &[Arc<Endpoint>],
        tried: &[Address],
        now: Instant,
    ) -> Option<(Admission, InFlight)> {
        let count = endpoints.len();
        let start = self.setup.view.next_cursor();
        (0..count)
            .map(|step| &endpoints[(start + step) % count])
            .filter(|endpoint| !tried.contains(endpoint.address()))
            .find_map(|endpoint| claim(endpoint, now, &self.setup.limits))
    }
}

impl<N> Clone for Balance<N> {
    /// A clone chooses and waits on its own: the choice and the pending
    /// wait are not shared.
    fn clone(&self) -> Self {
        Self {
            setup: Arc::clone(&self.setup),
            picked: None,
            wait: None,
        }
    }
}

type Answer = Result<Response<ResponseBody>, ClientError>;

/// A call on its way: where it went (`None`: nowhere, no instance admitted
/// it), and its answer to come.
#[derive(Debug)]
pub struct Routed<F> {
    to: Option<Address>,
    answer: Either<Ready<Answer>, F>,
}

impl<F: Future<Output = Answer> + Unpin> Future for Routed<F> {
    type Output = Answer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        self.answer.poll_unpin(cx)
    }
}

impl<F> Placed for Routed<F> {
    fn placed_at(&self) -> Option<&Address> {
        self.to.as_ref()
    }
}

impl<N> tower::Service<Call> for Balance<N>
where
    N: NewEndpointService,
    <N::Service as tower::Service<Admitted>>::Future: Unpin,
{
    type Response = Response<ResponseBody>;
    type Error = ClientError;
    type Future = Routed<<N::Service as tower::Service<Admitted>>::Future>;

    /// Chooses the endpoint for the next call; `Pending` until the view
    /// has its first registry answer and some endpoint admits a request.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        loop {
            if self.picked.is_some() {
                return Poll::Ready(Ok(()));
            }
            let view = &self.setup.view;
            if site::any_synced(view, &self.setup.remote) {
                self.picked = self.pick(&[], Instant::now());
                if self.picked.is_some() {
                    self.wait = None;
                    return Poll::Ready(Ok(()));
                }
            }
            ready!(gate::poll_change(&mut self.wait, || view.changes(), cx));
        }
    }

    /// Sends `call` to the endpoint `poll_ready` chose — or, for a call
    /// that has tried some already, to one it has not (chosen now). Fails
    /// fast, with no attempt, when none admits it.
    fn call(&mut self, call: Call) -> Self::Future {
        // Given back at once, before choosing again, when the call can't
        // use it.
        let ready = self.picked.take().filter(|_| call.tried.is_empty());
        let picked = ready.or_else(|| self.pick(&call.tried, call.attempt_time()));
        let Some((admission, in_flight)) = picked.and_then(Picked::spend) else {
            return Routed {
                to: None,
                answer: Either::Left(future::ready(Err(self.unavailable(&call)))),
            };
        };
        let endpoint = in_flight.endpoint();
        // Per request, so at debug: a service can't afford a line per
        // call. Callers that want the walkthrough's line log it from
        // `ServedBy` (the market does, when the serving instance changes).
        tracing::debug!(
            "{} using instance {}: {}",
            self.setup.view.service(),
            endpoint.id(),
            endpoint.address()
        );
        let to = Some(endpoint.address().clone());
        let mut service = self.setup.new_service.new_service(Arc::clone(endpoint));
        let answer = tower::Service::call(
            &mut service,
            Admitted {
                call,
                admission,
                in_flight,
            },
        );
        Routed {
            to,
            answer: Either::Right(answer),
        }
    }
}

impl<N: NewEndpointService> Unavailable<Call> for Balance<N>
where
    <N::Service as tower::Service<Admitted>>::Future: Unpin,
{
    /// The fail-fast answer when no instance admits `call`: no instances
    /// listed, every one that would admit it at its cap, or all of them
    /// down (logged, on a call's first attempt).
    fn unavailable(&self, call: &Call) -> ClientError {
        let service = self.setup.view.service().clone();
        let endpoints = self.setup.view.endpoints();
        let now = Instant::now();
        let full = endpoints.iter().find_map(|e| {
            let limit = self.setup.limits.cap(e)?;
            (e.in_flight() >= limit && e.admissible(now)).then_some(limit)
        });
        if let Some(limit) = full {
            return ClientError::AllAtCapacity { service, limit };
        }
        if call.attempt == 1 {
            tracing::warn!("all {service} instances are down");
        }
        if endpoints.is_empty() {
            ClientError::NoInstances { service }
        } else {
            ClientError::AllUnavailable { service }
        }
    }
}
