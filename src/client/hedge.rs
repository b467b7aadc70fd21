//! Hedged requests: when an idempotent call's first attempt is late, a
//! second goes to another instance, and the first good answer wins.
//!
//! [`Hedge`] is a tower part of its own, as tower's `hedge` is: it wraps
//! any service whose futures say where they sent the request ([`Placed`]),
//! and a [`Policy`] says which requests may be sent twice and how a copy is
//! sent elsewhere. It reads the delay from latencies something else records
//! (in Beacon's client, each first attempt records its own: see
//! [`NewAttempt::recording`](super::NewAttempt::recording)).
//!
//! "Late" is past the hedge delay: a high quantile (default p95) of the
//! service's recent attempt latencies, kept between a floor and a cap and
//! never past the attempt timeout — so about one call in twenty is hedged
//! when nothing is wrong, and nearly every call that would wait on a
//! hung or stalled instance is answered by the hedge instead. Hedges spend
//! from their own budget (a share of recent calls plus
//! a small floor), so they can never double the load of an overloaded
//! service: when the budget is out, the call waits for its first attempt.
//!
//! The attempt that loses is no longer waited for, but it is not dropped:
//! it is left to finish on its own (within its attempt timeout, in
//! Beacon's client), so its verdict still reaches its instance's breaker. A
//! hung instance whose calls are all answered by hedges still times out,
//! and its breaker opens; a slow one still reports its latency.

use super::budget::WindowBudget;
use super::{histogram::LatencyHistogram, Call, Hedging};
use crate::wire::Address;
use futures_util::future::Either;
use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::Instant;
use tower::ServiceExt;

/// Hedges sent and won so far, for dashboards and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HedgeCounts {
    /// Second attempts sent because the first was late.
    pub sent: u64,
    /// Of those, the ones that answered first.
    pub won: u64,
    /// Hedges that would have gone but for the budget.
    pub budget_exhausted: u64,
}

/// Fewest recent latencies before the quantile is trusted.
const MIN_SAMPLES: u32 = 20;
/// How long the latency windows a hedge reads should be (see
/// [`LatencyHistogram::new`]).
pub(crate) const WINDOW: Duration = Duration::from_secs(10);
/// How long a worked-out hedge delay is used before it is worked out again:
/// a quantile reads every bucket of both windows (thousands of
/// instructions, too dear per call), and over windows of 10 s it moves
/// slowly anyway.
const DELAY_REFRESH: Duration = Duration::from_millis(10);

#[derive(Debug)]
struct Shared {
    hedging: Hedging,
    latencies: Arc<LatencyHistogram>,
    /// The hedge delay as last worked out, in nanoseconds.
    delay_ns: AtomicU64,
    /// When (nanoseconds after `started`) to work it out again; the caller
    /// that moves it on does the work, the others use the last value.
    refresh_at_ns: AtomicU64,
    started: Instant,
    budget: WindowBudget,
    sent: AtomicU64,
    won: AtomicU64,
    budget_exhausted: AtomicU64,
}

impl Shared {
    /// How long the first attempt gets before a hedge goes out, as last
    /// worked out (at most [`DELAY_REFRESH`] ago).
    fn delay(&self, now: Instant) -> Duration {
        let at = u64::try_from(now.saturating_duration_since(self.started).as_nanos())
            .unwrap_or(u64::MAX);
        let due = self.refresh_at_ns.load(Ordering::Relaxed);
        let refresh = u64::try_from(DELAY_REFRESH.as_nanos()).unwrap_or(u64::MAX);
        if at >= due
            && self
                .refresh_at_ns
                .compare_exchange(
                    due,
                    at.saturating_add(refresh),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            let delay = self.worked_out_delay(now);
            let ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
            self.delay_ns.store(ns, Ordering::Relaxed);
            return delay;
        }
        Duration::from_nanos(self.delay_ns.load(Ordering::Relaxed))
    }

    /// The configured quantile of recent latencies, bounded (the cap
    /// while too few are known).
    fn worked_out_delay(&self, now: Instant) -> Duration {
        let latency = self
            .latencies
            .quantile(self.hedging.quantile, MIN_SAMPLES, now);
        bounded(&self.hedging, latency)
    }
}

/// `latency` (the cap while it is unknown) between the floor and the cap.
fn bounded(hedging: &Hedging, latency: Option<Duration>) -> Duration {
    let cap = hedging.max_delay.max(hedging.min_delay);
    latency.map_or(cap, |d| d.clamp(hedging.min_delay, cap))
}

/// A future that knows where its request went: a hedge goes elsewhere.
pub trait Placed {
    /// The instance the request was sent to; `None` if it was sent nowhere
    /// (no instance admitted it).
    fn placed_at(&self) -> Option<&Address>;
}

/// Which requests a [`Hedge`] may send twice, and how a copy goes
/// elsewhere.
pub trait Policy<Req> {
    /// A copy of `request` to hedge with, or `None` if it may not be sent
    /// twice.
    fn clone_request(&self, request: &Req) -> Option<Req>;

    /// Makes `spare` go anywhere but `first`, where the request went first.
    fn elsewhere(&self, spare: &mut Req, first: &Address);

    /// When `request` began: the hedge delay counts from then. Default is
    /// now, as the hedge sends it.
    fn began(&self, request: &Req) -> Instant {
        let _ = request;
        Instant::now()
    }
}

/// Beacon's hedge policy: a first attempt of an idempotent call whose body
/// is kept, sent again as the next attempt, to an instance it has not
/// tried.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayElsewhere;

impl Policy<Call> for ReplayElsewhere {
    fn clone_request(&self, call: &Call) -> Option<Call> {
        (call.attempt == 1 && call.can_replay()).then(|| call.clone())
    }

    fn elsewhere(&self, spare: &mut Call, first: &Address) {
        spare.tried.push(first.clone());
        spare.attempt += 1;
    }

    /// When the call began, microseconds ago: one clock reading fewer per
    /// call.
    fn began(&self, call: &Call) -> Instant {
        call.started()
    }
}

/// Hedges the requests its [`Policy`] allows over `S`; passes everything
/// else straight through. Cheap to clone; clones share the latencies, the
/// budget and the counts.
#[derive(Debug, Clone)]
pub struct Hedge<S, P> {
    inner: S,
    policy: P,
    /// `None`: hedging is off.
    shared: Option<Arc<Shared>>,
}

impl<S, P> Hedge<S, P> {
    /// Hedging over `inner` as `hedging` says (`None`: never), after a
    /// quantile of `latencies`.
    pub fn new(
        inner: S,
        policy: P,
        hedging: Option<Hedging>,
        latencies: Arc<LatencyHistogram>,
    ) -> Self {
        let shared = hedging.map(|hedging| {
            let first = bounded(&hedging, None);
            Arc::new(Shared {
                hedging,
                latencies,
                delay_ns: AtomicU64::new(u64::try_from(first.as_nanos()).unwrap_or(u64::MAX)),
                refresh_at_ns: AtomicU64::new(0),
                started: Instant::now(),
                budget: WindowBudget::new(hedging.ratio, hedging.floor_per_sec),
                sent: AtomicU64::new(0),
                won: AtomicU64::new(0),
                budget_exhausted: AtomicU64::new(0),
            })
        });
        Self {
            inner,
            policy,
            shared,
        }
    }

    /// The service hedged.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Hedges sent and won so far.
    pub fn counts(&self) -> HedgeCounts {
        self.shared
            .as_ref()
            .map_or_else(HedgeCounts::default, |s| HedgeCounts {
                sent: s.sent.load(Ordering::Relaxed),
                won: s.won.load(Ordering::Relaxed),
                budget_exhausted: s.budget_exhausted.load(Ordering::Relaxed),
            })
    }
}

type Raced<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, P, Req> tower::Service<Req> for Hedge<S, P>
where
    S: tower::Service<Req> + Clone + Send + 'static,
    S::Future: Placed + Unpin + Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    P: Policy<Req> + Clone + Send + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Raced<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let Some(shared) = &self.shared else {
            return Either::Left(self.inner.call(request));
        };
        let Some(spare) = self.policy.clone_request(&request) else {
            return Either::Left(self.inner.call(request));
        };
        let now = self.policy.began(&request);
        shared.budget.deposit_at(now);
        let first = self.inner.call(request);
        let Some(first_at) = first.placed_at().cloned() else {
            return Either::Left(first);
        };
        let late = Late {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
            shared: Arc::clone(shared),
            spare,
            first_at,
        };
        let late_at = now + shared.delay(now);
        Either::Right(Box::pin(first_or_hedge(first, late_at, late)))
    }
}

/// What a hedge needs once the first attempt is late: kept apart so that
/// the future of a call answered in time (nearly all) stays small.
struct Late<S, P, Req> {
    inner: S,
    policy: P,
    shared: Arc<Shared>,
    /// The request, to send again.
    spare: Req,
    /// Where the first went: the hedge goes elsewhere.
    first_at: Address,
}

/// The first answer if it comes by `late_at`; else the race of the first
/// and a hedge.
async fn first_or_hedge<S, P, Req>(
    mut first: S::Future,
    late_at: Instant,
    late: Late<S, P, Req>,
) -> Result<S::Response, S::Error>
where
    S: tower::Service<Req, Response: Send, Error: Send> + Send + 'static,
    S::Future: Placed + Unpin + Send + 'static,
    P: Policy<Req>,
{
    tokio::select! {
        biased;
        answer = &mut first => return answer,
        () = tokio::time::sleep_until(late_at) => {}
    }
    Box::pin(late.race(first)).await
}

impl<S, P, Req> Late<S, P, Req>
where
    S: tower::Service<Req, Response: Send, Error: Send> + Send + 'static,
    S::Future: Placed + Unpin + Send + 'static,
    P: Policy<Req>,
{
    /// A hedge elsewhere, if the budget allows and the service places it,
    /// racing `first`; else `first` alone.
    async fn race(self, mut first: S::Future) -> Result<S::Response, S::Error> {
        let Self {
            mut inner,
            policy,
            shared,
            mut spare,
            first_at,
        } = self;
        if !shared.budget.withdraw_at(Instant::now()) {
            shared.budget_exhausted.fetch_add(1, Ordering::Relaxed);
            return first.await;
        }
        policy.elsewhere(&mut spare, &first_at);
        // At once behind `FailFast`; a service that waits for readiness
        // waits while the first attempt may still answer.
        tokio::select! {
            biased;
            answer = &mut first => return answer,
            ready = inner.ready() => if ready.is_err() {
                return first.await;
            },
        }
        let mut second = inner.call(spare);
        if second.placed_at().is_none() {
            // No other instance would take it.
            return first.await;
        }
        shared.sent.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            answer = &mut first => match answer {
                Ok(_) => {
                    finish_alone(second);
                    answer
                }
                Err(_) => second.await,
            },
            answer = &mut second => match answer {
                Ok(_) => {
                    shared.won.fetch_add(1, Ordering::Relaxed);
                    finish_alone(first);
                    answer
                }
                Err(_) => first.await,
            },
        }
    }
}

/// Lets the request that lost run to its end, so its verdict reaches its
/// breaker.
fn finish_alone<F>(request: F)
where
    F: Future<Output: Send> + Send + 'static,
{
    tokio::spawn(async move {
        let _ = request.await;
    });
}
