//! Hedged requests: when an idempotent call's first attempt is late, a
//! second goes to another instance, and the first good answer wins.
//!
//! "Late" is past the hedge delay: a high quantile (default p95) of the
//! service's recent attempt latencies, kept between a floor and a cap and
//! never past the attempt timeout — so about one call in twenty is hedged
//! when nothing is wrong, and nearly every call that would wait on a
//! hung or stalled instance is answered by the hedge instead. Hedges spend
//! from their own budget ([`WindowBudget`]: a share of recent calls plus
//! a small floor), so they can never double the load of an overloaded
//! service: when the budget is out, the call waits for its first attempt.
//!
//! The attempt that loses is no longer waited for, but it is not dropped:
//! it is left to finish on its own, within its attempt timeout, so its
//! verdict still reaches its instance's breaker. A hung instance whose calls
//! are all answered by hedges still times out, and its breaker opens; a
//! slow one still reports its latency to the balancer.

use super::budget::WindowBudget;
use super::{
    histogram::{CumulativeLatencies, LatencyHistogram},
    Admitted, Balance, Call, ClientError, NewEndpointService, ResponseBody, ServedBy,
};
use crate::wire::Address;
use futures_util::future::{self, Either};
use http::Response;
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

/// When and how often to hedge. `#[non_exhaustive]`: build it from
/// `default()` with its setters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Hedging {
    /// The hedge delay is this quantile of the service's recent attempt
    /// latencies. Default 0.95.
    pub quantile: f64,
    /// Shortest hedge delay. Default 5 ms: on a fast service the p95 is
    /// below a millisecond, and hedging that early would mostly duplicate
    /// calls that were about to answer.
    pub min_delay: Duration,
    /// Longest hedge delay, and the delay while there are too few samples
    /// to know better (under 20). Default 200 ms. The attempt timeout caps
    /// it too.
    pub max_delay: Duration,
    /// Hedges allowed as a share of recent calls. Default 0.1.
    pub ratio: f32,
    /// Hedges per second allowed however few calls there are. Default 5.
    pub floor_per_sec: u32,
}

impl Default for Hedging {
    fn default() -> Self {
        Self {
            quantile: 0.95,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
            ratio: 0.1,
            floor_per_sec: 5,
        }
    }
}

impl Hedging {
    /// Hedge after this quantile of the service's recent attempt
    /// latencies. Default is 0.95.
    pub fn quantile(mut self, quantile: f64) -> Self {
        self.quantile = quantile;
        self
    }

    /// Keep the hedge delay between `min` and `max` (`max` is also the
    /// delay while there are too few samples). Default is 5 ms to 200 ms.
    pub fn delay_between(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.max_delay = max;
        self
    }

    /// The hedge budget: hedges as a share of recent calls, and
    /// `floor_per_sec` however few calls there are. Default is 0.1 and 5
    /// per second.
    pub fn budget(mut self, ratio: f32, floor_per_sec: u32) -> Self {
        self.ratio = ratio;
        self.floor_per_sec = floor_per_sec;
        self
    }
}

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
/// How long the latency windows are.
const WINDOW: Duration = Duration::from_secs(10);
/// How long a worked-out hedge delay is used before it is worked out again:
/// a quantile reads every bucket of both windows (thousands of
/// instructions, too dear per call), and over windows of 10 s it moves
/// slowly anyway.
const DELAY_REFRESH: Duration = Duration::from_millis(10);

#[derive(Debug)]
struct Shared {
    hedging: Hedging,
    attempt_timeout: Duration,
    latencies: LatencyHistogram,
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

    /// Records the latency of a good answer to an attempt sent at `sent`,
    /// as the attempt measured it ([`ServedBy`]): no clock reading here.
    fn record(&self, answer: &Answer, sent: Instant) {
        let served = answer
            .as_ref()
            .ok()
            .and_then(|response| response.extensions().get::<ServedBy>());
        if let Some(served) = served {
            self.latencies.record(served.latency, sent + served.latency);
        }
    }

    /// The configured quantile of recent latencies, bounded (the cap
    /// while too few are known).
    fn worked_out_delay(&self, now: Instant) -> Duration {
        let latency = self
            .latencies
            .quantile(self.hedging.quantile, MIN_SAMPLES, now);
        bounded(&self.hedging, self.attempt_timeout, latency)
    }
}

/// `latency` (the cap while it is unknown) between the floor and the cap,
/// and never past the attempt timeout.
fn bounded(hedging: &Hedging, attempt_timeout: Duration, latency: Option<Duration>) -> Duration {
    let cap = hedging.max_delay.max(hedging.min_delay);
    latency
        .map_or(cap, |d| d.clamp(hedging.min_delay, cap))
        .min(attempt_timeout)
}

/// Hedges idempotent first attempts over a [`Balance`]; passes everything
/// else straight through. Cheap to clone; clones share the latencies, the
/// budget and the counts.
#[derive(Debug)]
pub struct Hedge<N> {
    balance: Balance<N>,
    /// `None`: hedging is off.
    shared: Option<Arc<Shared>>,
}

impl<N> Hedge<N> {
    /// Hedging over `balance` as `hedging` says (`None`: never), with
    /// delays capped by `attempt_timeout`.
    pub fn new(balance: Balance<N>, hedging: Option<Hedging>, attempt_timeout: Duration) -> Self {
        let shared = hedging.map(|hedging| {
            let first = bounded(&hedging, attempt_timeout, None);
            Arc::new(Shared {
                hedging,
                attempt_timeout,
                latencies: LatencyHistogram::new(WINDOW),
                delay_ns: AtomicU64::new(u64::try_from(first.as_nanos()).unwrap_or(u64::MAX)),
                refresh_at_ns: AtomicU64::new(0),
                started: Instant::now(),
                budget: WindowBudget::new(hedging.ratio, hedging.floor_per_sec),
                sent: AtomicU64::new(0),
                won: AtomicU64::new(0),
                budget_exhausted: AtomicU64::new(0),
            })
        });
        Self { balance, shared }
    }

    /// The same hedging (latencies, budget, counts shared) over `balance`.
    pub fn with_balance(&self, balance: Balance<N>) -> Self {
        Self {
            balance,
            shared: self.shared.clone(),
        }
    }

    /// The balancer underneath.
    pub fn balance(&self) -> &Balance<N> {
        &self.balance
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

    /// Every first attempt's latency since the start, as cumulative counts
    /// at each of `bounds` (seconds) with the count and the sum; `None`
    /// while hedging is off (the histogram is the hedge's).
    pub fn latencies(&self, bounds: &[f64]) -> Option<CumulativeLatencies> {
        self.shared.as_ref().map(|s| s.latencies.cumulative(bounds))
    }
}

impl<N: Clone> Clone for Hedge<N> {
    fn clone(&self) -> Self {
        Self {
            balance: self.balance.clone(),
            shared: self.shared.clone(),
        }
    }
}

type Answer = Result<Response<ResponseBody>, ClientError>;
type Hedged = Pin<Box<dyn Future<Output = Answer> + Send>>;

impl<N> tower::Service<Call> for Hedge<N>
where
    N: NewEndpointService + Clone + Send + Sync + 'static,
    N::Service: tower::Service<Admitted, Future: Unpin + Send + 'static> + Send,
{
    type Response = Response<ResponseBody>;
    type Error = ClientError;
    type Future = Either<<Balance<N> as tower::Service<Call>>::Future, Hedged>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        self.balance.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        match &self.shared {
            Some(shared) if call.attempt == 1 && call.can_replay() => {
                Either::Right(hedged(&self.balance, shared, call))
            }
            _ => Either::Left(self.balance.call(call)),
        }
    }
}

/// The first attempt, sent now, and a second to another instance if the
/// first is late and the budget allows.
fn hedged<N>(balance: &Balance<N>, shared: &Arc<Shared>, call: Call) -> Hedged
where
    N: NewEndpointService + Clone + Send + Sync + 'static,
    N::Service: tower::Service<Admitted, Future: Unpin + Send + 'static> + Send,
{
    let started = call.started();
    shared.budget.deposit_at(started);
    let Some(mut gate) = balance.route(&call) else {
        return Box::pin(future::ready(Err(balance.unavailable(&call))));
    };
    let late = Late {
        first_at: gate.endpoint().address().clone(),
        // Latencies of whole answers only: a streamed one's attempt ends at
        // its headers, and would pull the hedge delay down for every call.
        record: !call.streams_response(),
        started,
        spare: call.clone(),
        balance: balance.clone(),
        shared: Arc::clone(shared),
    };
    let first = tower::Service::call(&mut gate, call);
    let late_at = started + shared.delay(started);
    Box::pin(first_or_hedge(first, late_at, late))
}

/// What a hedge needs once the first attempt is late: kept apart so that
/// the future of a call answered in time (nearly all) stays small.
struct Late<N> {
    balance: Balance<N>,
    shared: Arc<Shared>,
    /// The call, to send again.
    spare: Call,
    /// Where the first attempt went: the hedge goes elsewhere.
    first_at: Address,
    /// When the first attempt went.
    started: Instant,
    /// Whether the first attempt's latency goes into the hedge delay.
    record: bool,
}

/// The first attempt's answer if it comes by `late_at`; else the race of
/// the first attempt and a hedge.
async fn first_or_hedge<N, F>(mut first: F, late_at: Instant, late: Late<N>) -> Answer
where
    N: NewEndpointService,
    N::Service: tower::Service<Admitted, Future = F>,
    F: Future<Output = Answer> + Unpin + Send + 'static,
{
    tokio::select! {
        biased;
        answer = &mut first => {
            if late.record {
                late.shared.record(&answer, late.started);
            }
            return answer;
        }
        () = tokio::time::sleep_until(late_at) => {}
    }
    Box::pin(late.race(first)).await
}

impl<N> Late<N>
where
    N: NewEndpointService,
    N::Service: tower::Service<Admitted>,
{
    /// A hedge to another instance, if the budget allows and one admits
    /// it, racing `first`; else `first` alone.
    async fn race<F>(self, mut first: F) -> Answer
    where
        N::Service: tower::Service<Admitted, Future = F>,
        F: Future<Output = Answer> + Unpin + Send + 'static,
    {
        let Self {
            balance,
            shared,
            mut spare,
            first_at,
            started,
            record,
        } = self;
        spare.tried.push(first_at);
        spare.attempt += 1;
        let second = if shared.budget.withdraw_at(Instant::now()) {
            balance.route(&spare)
        } else {
            shared.budget_exhausted.fetch_add(1, Ordering::Relaxed);
            None
        };
        let Some(mut gate) = second else {
            return first.await;
        };
        shared.sent.fetch_add(1, Ordering::Relaxed);
        let mut second = tower::Service::call(&mut gate, spare);
        drop(gate);
        tokio::select! {
            answer = &mut first => match answer {
                Ok(_) => {
                    if record {
                        shared.record(&answer, started);
                    }
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

/// Lets the attempt that lost run to its end (bounded by its attempt
/// timeout), so its verdict reaches its breaker.
fn finish_alone<F>(attempt: F)
where
    F: Future<Output = Answer> + Send + 'static,
{
    tokio::spawn(async move {
        let _ = attempt.await;
    });
}
