//! The client's tower parts used one by one, outside a `ServiceClient`: a
//! hedge over a service of our own, a balancer whose `poll_ready` chooses
//! and whose `call` spends, and fail-fast readiness. Paused clock, no
//! sockets.

use beacon::{
    client::{
        hedge::{Placed, Policy},
        Balance, Call, ExchangeError, FailFast, Hedge, LatencyHistogram, NewAttempt, RequestBody,
        ResponseBody,
    },
    wire::{Address, InstanceId},
    BreakerConfig, ClientError, Hedging, ResolverConfig, ServiceView,
};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

/// A request to a pair of replicas: which to avoid, if any.
#[derive(Debug, Clone)]
struct Lookup {
    avoid: Option<Address>,
}

/// Two replicas, `a` answering in 500 ms and `b` in 10 ms; each request
/// goes to `a` unless told to avoid it.
#[derive(Clone)]
struct Replicas {
    sent: Arc<Mutex<Vec<Address>>>,
}

fn address(name: &str) -> Address {
    Address::new(&format!("http://{name}:80")).expect("address")
}

/// The answer to come, and where its request went.
struct Sent {
    to: Address,
    answer: BoxFuture<'static, Result<&'static str, &'static str>>,
}

impl Future for Sent {
    type Output = Result<&'static str, &'static str>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.answer.as_mut().poll(cx)
    }
}

impl Placed for Sent {
    fn placed_at(&self) -> Option<&Address> {
        Some(&self.to)
    }
}

impl Service<Lookup> for Replicas {
    type Response = &'static str;
    type Error = &'static str;
    type Future = Sent;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), &'static str>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, lookup: Lookup) -> Sent {
        let (to, after, answer) = match lookup.avoid {
            Some(_) => (address("b"), 10, "b"),
            None => (address("a"), 500, "a"),
        };
        self.sent.lock().expect("lock").push(to.clone());
        let answer = Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(after)).await;
            Ok(answer)
        });
        Sent { to, answer }
    }
}

/// Every lookup may be sent twice; the copy avoids where the first went.
#[derive(Clone)]
struct AnyLookup;

impl Policy<Lookup> for AnyLookup {
    fn clone_request(&self, lookup: &Lookup) -> Option<Lookup> {
        Some(lookup.clone())
    }

    fn elsewhere(&self, spare: &mut Lookup, first: &Address) {
        spare.avoid = Some(first.clone());
    }
}

#[tokio::test(start_paused = true)]
async fn a_hedge_works_over_any_service_that_says_where_it_sent() {
    let replicas = Replicas {
        sent: Arc::default(),
    };
    let hedging =
        Hedging::default().delay_between(Duration::from_millis(50), Duration::from_millis(50));
    let latencies = Arc::new(LatencyHistogram::new(Duration::from_secs(10)));
    let mut hedge = Hedge::new(replicas.clone(), AnyLookup, Some(hedging), latencies);
    let started = Instant::now();
    let answer = hedge
        .ready()
        .await
        .expect("ready")
        .call(Lookup { avoid: None })
        .await;
    assert_eq!(answer, Ok("b"), "the hedge answered first");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(60),
        "50 ms late, then 10 ms"
    );
    assert_eq!(
        *replicas.sent.lock().expect("lock"),
        [address("a"), address("b")]
    );
    let counts = hedge.counts();
    assert_eq!((counts.sent, counts.won), (1, 1));
}

fn id(instance: usize) -> InstanceId {
    format!("ratings-{instance}").parse().expect("id")
}

/// A view of `count` in-memory instances whose breakers open at the first
/// failure for a minute.
fn view(count: usize) -> Arc<ServiceView> {
    let listed: Vec<(InstanceId, Address)> = (0..count)
        .map(|i| (id(i), address(&format!("10.0.0.{i}"))))
        .collect();
    let config = ResolverConfig {
        breaker: BreakerConfig {
            failure_threshold: 1,
            open_for: Duration::from_secs(60),
            jitter: 0.0,
            failure_rate: None,
            ..BreakerConfig::default()
        },
        ..ResolverConfig::default()
    };
    ServiceView::fixed("ratings".parse().expect("name"), &listed, &config)
}

/// Instances answering `status` at once.
fn answering(
    status: StatusCode,
) -> impl Service<
    Request<RequestBody>,
    Response = Response<ResponseBody>,
    Error = ExchangeError,
    Future = impl Send + 'static,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(move |_: Request<RequestBody>| async move {
        Ok::<_, ExchangeError>(
            Response::builder()
                .status(status)
                .body(ResponseBody::from(Bytes::new()))
                .expect("response"),
        )
    })
}

fn get() -> Call {
    let request = Request::get("/x").body(Bytes::new()).expect("request");
    Call::new(request, Duration::from_secs(2))
}

#[tokio::test(start_paused = true)]
async fn the_balancer_chooses_in_poll_ready_and_a_choice_dropped_unspent_is_given_back() {
    // One instance, its breaker opened by a 503 and half-open a minute on:
    // it admits one probe at a time.
    let view = view(1);
    let attempts = NewAttempt::new(
        answering(StatusCode::SERVICE_UNAVAILABLE),
        Duration::from_secs(1),
    );
    let mut balance = Balance::new(Arc::clone(&view), attempts);
    let answer = balance.ready().await.expect("ready").call(get()).await;
    assert!(
        matches!(answer, Err(ClientError::ServerError { .. })),
        "{answer:?}"
    );
    tokio::time::advance(Duration::from_secs(60)).await;

    // A balancer that became ready holds the probe...
    let mut first = balance.clone();
    first.ready().await.expect("ready: the probe is its");
    let mut second = balance.clone();
    let waited = tokio::time::timeout(Duration::from_millis(10), second.ready()).await;
    assert!(waited.is_err(), "no second probe while the first is held");
    // ...and gives it back when dropped without a call.
    drop(first);
    tokio::time::timeout(Duration::from_millis(10), second.ready())
        .await
        .expect("the probe was given back")
        .expect("ready");
}

#[tokio::test(start_paused = true)]
async fn fail_fast_turns_a_balancer_that_would_wait_into_an_error_that_says_why() {
    let view = view(2);
    let attempts = NewAttempt::new(
        answering(StatusCode::SERVICE_UNAVAILABLE),
        Duration::from_secs(1),
    );
    let mut balance = FailFast::new(Balance::new(Arc::clone(&view), attempts));
    // Both instances fail once (each opens its breaker).
    for _ in 0..2 {
        let answer = balance.ready().await.expect("ready").call(get()).await;
        assert!(
            matches!(answer, Err(ClientError::ServerError { .. })),
            "{answer:?}"
        );
    }
    let started = Instant::now();
    let answer = balance
        .ready()
        .await
        .expect("ready at once")
        .call(get())
        .await;
    assert!(
        matches!(answer, Err(ClientError::AllUnavailable { .. })),
        "{answer:?}"
    );
    assert_eq!(started.elapsed(), Duration::ZERO);
}
