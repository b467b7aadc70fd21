//! Spreading calls over a service's admitted endpoints, read from the
//! shared view without locks held across an await.
//!
//! Per call the balancer takes the view's current list (an `Arc` clone),
//! skips instances the call already tried and those whose breaker would not
//! admit it, and hands the call to the chosen one behind its
//! [`BreakerGate`]. tower's `ReadyCache` would hold every endpoint's
//! service and poll them all; the view already knows each breaker's state,
//! so one look per candidate does.
//!
//! Two ways to choose ([`Balancing`]):
//!
//! * **least loaded** (the default): power of two choices, as linkerd2 and
//!   tower's `p2c` do — two distinct instances drawn at random, the one with
//!   the lower latency estimate × (calls in flight + 1) wins, unless the two
//!   are within [`TIE_FACTOR`] of each other: then the first drawn (see
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
//! the next change of an instance or breaker. A balancer made with
//! [`Balance::failing_fast`] sheds instead, as tower's load-shed does:
//! always ready, and a call that no instance admits fails at once (what
//! [`ServiceClient::send`](super::ServiceClient::send) and its retries
//! want: no wait, and no second look at the breakers per call).

use super::{gate, zone, Admitted, BreakerGate, Call, ClientError, ResponseBody};
use crate::breaker::Admission;
use crate::endpoint::{Endpoint, InFlight, Load};
use crate::resolver::ServiceView;
use crate::wire::Address;
use futures_util::future::{self, Either, Ready};
use http::Response;
use rand::Rng;
use std::{
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
pub fn has_candidate(view: &ServiceView, tried: &[Address]) -> bool {
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
    /// Set while `poll_ready` waits for a change.
    wait: Option<gate::ChangeWait>,
}

/// A balancer's settings and the view it balances over.
#[derive(Debug, Clone)]
struct Setup<N> {
    view: Arc<ServiceView>,
    new_service: N,
    balancing: Balancing,
    /// Always ready, failing calls fast, instead of waiting for readiness.
    fail_fast: bool,
    /// Most attempts in flight to one endpoint; `None`: no cap.
    max_in_flight: Option<u32>,
    /// The caller's zone, whose instances it prefers (see
    /// [`zone`](super::zone)); `None`: every zone alike.
    zone: Option<Arc<str>>,
}

impl<N> Setup<N> {
    fn new(view: Arc<ServiceView>, new_service: N) -> Self {
        Self {
            view,
            new_service,
            balancing: Balancing::default(),
            fail_fast: false,
            max_in_flight: None,
            zone: None,
        }
    }
}

impl<N> Balance<N> {
    /// A balancer over `view`, reaching each endpoint through the service
    /// `new_service` makes for it.
    pub fn new(view: Arc<ServiceView>, new_service: N) -> Self {
        Self::of(Setup::new(view, new_service))
    }

    /// Like [`new`](Self::new), but always ready: a call no instance
    /// admits fails at once with [`ClientError::AllUnavailable`] (or
    /// `NoInstances`).
    pub fn failing_fast(view: Arc<ServiceView>, new_service: N) -> Self {
        Self::of(Setup {
            fail_fast: true,
            ..Setup::new(view, new_service)
        })
    }

    fn of(setup: Setup<N>) -> Self {
        Self {
            setup: Arc::new(setup),
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
        self.with(|setup| setup.max_in_flight = limit)
    }

    /// The same with `change` made to the settings (copied first if a clone
    /// shares them).
    fn with(mut self, change: impl FnOnce(&mut Setup<N>)) -> Self {
        change(Arc::make_mut(&mut self.setup));
        self
    }
}

impl<N> Balance<N> {
    /// The fail-fast answer when no instance admits `call`: no instances
    /// listed, every one that would admit it at its cap, or all of them
    /// down (logged, on a call's first attempt).
    pub fn unavailable(&self, call: &Call) -> ClientError {
        let service = self.setup.view.service().clone();
        let endpoints = self.setup.view.endpoints();
        if let Some(limit) = self.setup.max_in_flight {
            let now = Instant::now();
            let full = |e: &Arc<Endpoint>| e.in_flight() >= limit && e.admissible(now);
            if endpoints.iter().any(full) {
                return ClientError::AllAtCapacity { service, limit };
            }
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

    /// The endpoint for `call`: its admission reserved and its place in
    /// flight claimed.
    fn pick(&self, call: &Call) -> Option<(Admission, InFlight)> {
        let endpoints = self.setup.view.endpoints();
        if endpoints.is_empty() {
            return None;
        }
        let now = call.attempt_time();
        // A retry or a hedge chooses among every zone: its call has found
        // trouble already, and a zone that just went down entirely would
        // otherwise get every retry too.
        if let (Some(zone), 1) = (&self.setup.zone, call.attempt) {
            let preferred = zone::preferred(&endpoints, zone, now);
            if let Some(picked) = self.pick_among(&preferred, call, now) {
                return Some(picked);
            }
        }
        self.pick_among(&endpoints, call, now)
    }

    /// The endpoint for `call` among `endpoints`, as [`Balancing`] says.
    fn pick_among(
        &self,
        endpoints: &[Arc<Endpoint>],
        call: &Call,
        now: Instant,
    ) -> Option<(Admission, InFlight)> {
        if endpoints.is_empty() {
            return None;
        }
        let drawn = match self.setup.balancing {
            Balancing::LeastLoaded => {
                least_loaded_of_two(endpoints, call, now, self.setup.max_in_flight)
            }
            Balancing::RoundRobin => None,
        };
        drawn.or_else(|| self.next_in_turn(endpoints, call, now))
    }

    /// The next admitted endpoint in round-robin order, not in `tried`.
    fn next_in_turn(
        &self,
        endpoints: &[Arc<Endpoint>],
        call: &Call,
        now: Instant,
    ) -> Option<(Admission, InFlight)> {
        let count = endpoints.len();
        let start = self.setup.view.next_cursor();
        (0..count)
            .map(|step| &endpoints[(start + step) % count])
            .filter(|endpoint| !call.tried.contains(endpoint.address()))
            .find_map(|endpoint| claim(endpoint, now, self.setup.max_in_flight))
    }
}

/// A place in flight on `endpoint` (within `limit`) and its breaker's
/// admission, or neither.
fn claim(
    endpoint: &Arc<Endpoint>,
    now: Instant,
    limit: Option<u32>,
) -> Option<(Admission, InFlight)> {
    let in_flight = InFlight::claim(endpoint, limit)?;
    // Refused: the place is given back as `in_flight` drops.
    let admission = gate::admit(endpoint, now)?;
    Some((admission, in_flight))
}

/// Power of two choices: of two distinct endpoints drawn at random, the
/// less loaded of those that may take `call` (and are under `limit`);
/// `None` if neither may.
fn least_loaded_of_two(
    endpoints: &[Arc<Endpoint>],
    call: &Call,
    now: Instant,
    limit: Option<u32>,
) -> Option<(Admission, InFlight)> {
    let count = endpoints.len();
    let mut rng = rand::rng();
    let first = rng.random_range(0..count);
    let second = (first + rng.random_range(1..count.max(2))) % count;
    let load = |i: usize| {
        let endpoint = &endpoints[i];
        if call.tried.contains(endpoint.address()) {
            None
        } else {
            let load = endpoint.load(now)?;
            limit
                .is_none_or(|limit| load.in_flight < limit)
                .then_some(load)
        }
    };
    let first_load = load(first);
    let second_load = if second == first { None } else { load(second) };
    let chosen = match (first_load, second_load) {
        (Some(a), Some(b)) if prefers_second(a, b) => second,
        (Some(_), _) => first,
        (None, Some(_)) => second,
        (None, None) => return None,
    };
    claim(&endpoints[chosen], now, limit)
}

/// How much cheaper the second drawn endpoint must be to win the draw:
/// costs within this factor of each other are a tie, which the first drawn
/// (at random) wins. Latency estimates of equal instances differ by noise —
/// tens of percent on loopback — and a strict comparison hands the one that
/// happens to measure fastest every draw it is in: two thirds of all calls,
/// of three instances. A slow instance (or a busy one: one more call in
/// flight doubles an idle one's cost) is still well past it.
pub const TIE_FACTOR: f64 = 1.5;

/// Whether `b` is clearly less loaded than `a` (by more than
/// [`TIE_FACTOR`]); otherwise `a` wins: it was drawn at random too.
pub fn prefers_second(a: Load, b: Load) -> bool {
    cost(b, a) * TIE_FACTOR < cost(a, b)
}

/// Latency estimate × (calls in flight + 1). Without an estimate of its
/// own an endpoint borrows its rival's: neutral.
fn cost(own: Load, rival: Load) -> f64 {
    let latency = own.latency_ns.or(rival.latency_ns).unwrap_or(1.0);
    latency * f64::from(own.in_flight.saturating_add(1))
}

impl<N> Clone for Balance<N> {
    /// A clone waits on its own: the pending wait is not shared.
    fn clone(&self) -> Self {
        Self {
            setup: Arc::clone(&self.setup),
            wait: None,
        }
    }
}

type BalanceFuture<S> = Either<
    Ready<Result<Response<ResponseBody>, ClientError>>,
    <S as tower::Service<Admitted>>::Future,
>;

impl<N: NewEndpointService> tower::Service<Call> for Balance<N> {
    type Response = Response<ResponseBody>;
    type Error = ClientError;
    type Future = BalanceFuture<N::Service>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        if self.setup.fail_fast {
            return Poll::Ready(Ok(()));
        }
        loop {
            if self.setup.view.is_synced() && has_candidate(&self.setup.view, &[]) {
                self.wait = None;
                return Poll::Ready(Ok(()));
            }
            let view = &self.setup.view;
            ready!(gate::poll_change(&mut self.wait, || view.changes(), cx));
        }
    }

    /// Sends `call` to the next admitted endpoint; fails fast (no attempt)
    /// when none admits it.
    fn call(&mut self, call: Call) -> Self::Future {
        match self.route(&call) {
            Some(mut gated) => Either::Right(tower::Service::call(&mut gated, call)),
            None => Either::Left(future::ready(Err(self.unavailable(&call)))),
        }
    }
}

impl<N: NewEndpointService> Balance<N> {
    /// The endpoint `call` goes to, behind its gate with admission already
    /// reserved (given back if the gate is dropped unused); `None` when no
    /// endpoint admits it. For parts that need to know where a call went
    /// before it is answered (see [`Hedge`](super::Hedge)).
    pub fn route(&self, call: &Call) -> Option<BreakerGate<N::Service>> {
        let (admission, in_flight) = self.pick(call)?;
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
        let inner = self.setup.new_service.new_service(Arc::clone(endpoint));
        Some(BreakerGate::admitted(admission, in_flight, inner))
    }
}
