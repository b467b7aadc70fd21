//! The client's parts — balancer, breaker gate, attempt, retry policy — on
//! tokio's paused clock, against in-memory instances: no sockets, no real
//! time, so every timing below is exact. `tests/client.rs` keeps the
//! integration tests with real processes, a real registry and TCP.

use beacon::{
    client::{
        Call, ExchangeError, NewAttempt, RequestBody, ResponseBody, Retries, RetryPolicy,
        ViewDiscover,
    },
    wire::{Address, InstanceId},
    Balancing, BreakerConfig, BreakerState, ClientConfig, ClientError, Event, EventKind, Hedging,
    ResolverConfig, ServedBy, ServiceClient, ServiceView,
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{sync::broadcast, time::Instant};
use tower::{Service, ServiceExt};

/// What an in-memory instance does with a request.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Answers at once with this status.
    Answer(StatusCode),
    /// Refuses the connection.
    Refuse,
    /// Never answers.
    Hang,
    /// Answers 200 after this long.
    Slow(Duration),
    /// Answers 500 to every n-th call it gets (n = 3: a third), 200 else.
    FailEvery(u32),
}

/// In-memory instances, keyed by authority (`10.0.0.1:80`), with a count
/// of the requests each was sent.
#[derive(Clone, Default)]
struct Instances {
    behaviour: Arc<Mutex<HashMap<String, Behaviour>>>,
    calls: Arc<Mutex<HashMap<String, u32>>>,
}

impl Instances {
    fn set(&self, instance: usize, behaviour: Behaviour) {
        self.behaviour
            .lock()
            .expect("lock")
            .insert(authority(instance), behaviour);
    }

    fn calls(&self, instance: usize) -> u32 {
        let calls = self.calls.lock().expect("lock");
        calls.get(&authority(instance)).copied().unwrap_or(0)
    }

    fn total_calls(&self) -> u32 {
        self.calls.lock().expect("lock").values().sum()
    }

    /// A transport that reaches these instances.
    fn transport(
        &self,
    ) -> impl tower::Service<
        Request<RequestBody>,
        Response = Response<ResponseBody>,
        Error = ExchangeError,
        Future = impl Send + 'static,
    > + Clone
           + Send
           + Sync
           + 'static {
        let instances = self.clone();
        tower::service_fn(move |request: Request<RequestBody>| {
            let at = request
                .uri()
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let count = {
                let mut calls = instances.calls.lock().expect("lock");
                let count = calls.entry(at.clone()).or_default();
                *count += 1;
                *count
            };
            let behaviour = instances
                .behaviour
                .lock()
                .expect("lock")
                .get(&at)
                .copied()
                .unwrap_or(Behaviour::Answer(StatusCode::OK));
            async move {
                match behaviour {
                    Behaviour::Answer(status) => Ok(Response::builder()
                        .status(status)
                        .body(ResponseBody::from(Bytes::from(at)))
                        .expect("response")),
                    Behaviour::Refuse => Err(ExchangeError::Connect(Arc::new(
                        std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                    ))),
                    Behaviour::Hang => std::future::pending().await,
                    Behaviour::FailEvery(n) if count % n == 0 => Ok(Response::builder()
                        .status(StatusCode::INTERNAL_SERVER_ERROR)
                        .body(ResponseBody::from(Bytes::from(at)))
                        .expect("response")),
                    Behaviour::FailEvery(_) => {
                        Ok(Response::new(ResponseBody::from(Bytes::from(at))))
                    }
                    Behaviour::Slow(after) => {
                        tokio::time::sleep(after).await;
                        Ok(Response::new(ResponseBody::from(Bytes::from(at))))
                    }
                }
            }
        })
    }
}

fn authority(instance: usize) -> String {
    format!("10.0.0.{}:80", instance + 1)
}

fn id(instance: usize) -> InstanceId {
    format!("ratings-{}", instance + 1).parse().expect("id")
}

/// A view of `count` in-memory instances.
fn view(count: usize, breaker: BreakerConfig) -> Arc<ServiceView> {
    let listed: Vec<(InstanceId, Address)> = (0..count)
        .map(|i| {
            let address = Address::new(&format!("http://{}", authority(i))).expect("address");
            (id(i), address)
        })
        .collect();
    let config = ResolverConfig {
        breaker,
        ..ResolverConfig::default()
    };
    ServiceView::fixed("ratings".parse().expect("name"), &listed, &config)
}

fn breaker(failure_threshold: u32, open_for: Duration) -> BreakerConfig {
    BreakerConfig {
        failure_threshold,
        open_for,
        max_open_for: open_for * 8,
        jitter: 0.0,
        // Consecutive failures only, unless a test says otherwise.
        failure_rate: None,
        ..BreakerConfig::default()
    }
}

fn config() -> ClientConfig {
    ClientConfig {
        attempt_timeout: Duration::from_millis(100),
        deadline: Duration::from_secs(2),
        retry_backoff: Duration::from_millis(10),
        retry_backoff_cap: Duration::from_millis(10),
        // Most tests here count calls per instance: in turn makes that
        // exact, and no hedges. The latency-aware and hedging tests say so.
        balancing: Balancing::RoundRobin,
        hedging: None,
        ..ClientConfig::default()
    }
}

fn least_loaded() -> ClientConfig {
    ClientConfig {
        balancing: Balancing::LeastLoaded,
        ..config()
    }
}

fn served_by<B>(response: &Response<B>) -> ServedBy {
    response
        .extensions()
        .get::<ServedBy>()
        .cloned()
        .expect("ServedBy on every answer")
}

/// The next event that `wanted` accepts; fails after a minute of (paused)
/// time without one.
async fn next_event(events: &mut broadcast::Receiver<Event>, wanted: fn(&EventKind) -> bool) {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let event = events.recv().await.expect("events");
            if wanted(&event.kind) {
                return;
            }
        }
    })
    .await
    .expect("the event within a minute");
}

/// The next breaker opening among `events`.
async fn breaker_opened(events: &mut broadcast::Receiver<Event>) {
    next_event(events, |k| matches!(k, EventKind::BreakerOpened { .. })).await;
}

/// `calls` GETs through `client`, every one answered (`why` says why).
async fn answered<T: beacon::client::Transport>(
    client: &ServiceClient<T>,
    calls: usize,
    why: &str,
) {
    for _ in 0..calls {
        client.get("/x").await.expect(why);
    }
}

#[tokio::test(start_paused = true)]
async fn calls_go_round_robin_over_every_instance() {
    let instances = Instances::default();
    let view = view(3, BreakerConfig::default());
    let client = ServiceClient::with_transport(view, config(), instances.transport());
    for _ in 0..30 {
        let answer = client.get("/ratings/camera").await.expect("answer");
        assert_eq!(served_by(&answer).attempts, 1);
    }
    assert_eq!(
        [instances.calls(0), instances.calls(1), instances.calls(2)],
        [10, 10, 10]
    );
}

#[tokio::test(start_paused = true)]
async fn a_path_that_is_no_uri_is_refused_before_any_attempt() {
    let instances = Instances::default();
    let client = ServiceClient::with_transport(
        view(1, BreakerConfig::default()),
        config(),
        instances.transport(),
    );
    match client.get("/ratings/a camera").await {
        Err(ClientError::InvalidRequest(message)) => {
            assert!(message.contains("invalid uri"), "{message}");
        }
        other => panic!("wanted InvalidRequest, got {other:?}"),
    }
    assert_eq!(instances.total_calls(), 0, "nothing was sent");
}

#[tokio::test(start_paused = true)]
async fn a_refusing_instance_is_retried_elsewhere_and_its_breaker_opens() {
    let instances = Instances::default();
    instances.set(1, Behaviour::Refuse);
    let view = view(3, breaker(1, Duration::from_secs(5)));
    let mut events = view.subscribe();
    let client = ServiceClient::with_transport(Arc::clone(&view), config(), instances.transport());
    answered(&client, 20, "callers never see the failure").await;
    breaker_opened(&mut events).await;
    assert_eq!(
        instances.calls(1),
        1,
        "one failure, then the breaker is open"
    );
    let states: Vec<BreakerState> = client
        .snapshot()
        .instances
        .iter()
        .map(|i| i.breaker)
        .collect();
    assert_eq!(
        states,
        [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::Closed
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_half_opens_on_time_and_one_good_probe_closes_it() {
    let instances = Instances::default();
    instances.set(0, Behaviour::Refuse);
    let view = view(2, breaker(1, Duration::from_secs(5)));
    let mut events = view.subscribe();
    let client = ServiceClient::with_transport(Arc::clone(&view), config(), instances.transport());
    let opened = Instant::now();
    client.get("/x").await.expect("retried on the other");
    breaker_opened(&mut events).await;
    instances.set(0, Behaviour::Answer(StatusCode::OK));
    // Its recovery task half-opens it when the open time has passed.
    next_event(&mut events, |k| {
        matches!(k, EventKind::BreakerHalfOpened { .. })
    })
    .await;
    assert_eq!(opened.elapsed(), Duration::from_secs(5));
    assert_eq!(instances.calls(0), 1, "no traffic while open");
    // The next two calls: one is the probe, the other goes to the instance
    // that never failed; then the breaker is closed.
    for _ in 0..2 {
        client.get("/x").await.expect("answer");
    }
    next_event(&mut events, |k| {
        matches!(k, EventKind::BreakerClosed { .. })
    })
    .await;
    assert_eq!(instances.calls(0), 2);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_instance_costs_one_attempt_timeout_then_nothing() {
    let instances = Instances::default();
    instances.set(0, Behaviour::Hang);
    let view = view(2, breaker(1, Duration::from_secs(30)));
    let client = ServiceClient::with_transport(view, config(), instances.transport());
    // The cursor starts at instance 0: the first call waits out the attempt
    // timeout there, backs off 10 ms and is answered by instance 1.
    let started = Instant::now();
    let answer = client.get("/x").await.expect("answered on retry");
    assert_eq!(served_by(&answer).attempts, 2);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took <= Duration::from_millis(110),
        "one attempt timeout plus at most one backoff: {took:?}"
    );
    let started = Instant::now();
    for _ in 0..10 {
        let answer = client.get("/x").await.expect("answer");
        assert_eq!(served_by(&answer).attempts, 1);
    }
    assert_eq!(started.elapsed(), Duration::ZERO, "no waiting once open");
    assert_eq!(instances.calls(0), 1);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_a_hanging_call_short_without_blaming_the_instance() {
    let instances = Instances::default();
    instances.set(0, Behaviour::Hang);
    let config = ClientConfig {
        attempt_timeout: Duration::from_secs(1),
        deadline: Duration::from_millis(300),
        ..config()
    };
    let client = ServiceClient::with_transport(
        view(1, breaker(1, Duration::from_secs(5))),
        config,
        instances.transport(),
    );
    let started = Instant::now();
    let error = client.get("/x").await.expect_err("hangs past the deadline");
    assert!(
        matches!(error, ClientError::DeadlineExceeded { .. }),
        "{error}"
    );
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    let instance = &client.snapshot().instances[0];
    assert_eq!(instance.breaker, BreakerState::Closed, "no verdict");
    assert_eq!(instance.failures, 0);
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_calls_are_not_retried() {
    let instances = Instances::default();
    for i in 0..3 {
        instances.set(i, Behaviour::Answer(StatusCode::SERVICE_UNAVAILABLE));
    }
    let client = ServiceClient::with_transport(
        view(3, breaker(u32::MAX, Duration::from_secs(5))),
        config(),
        instances.transport(),
    );
    let request = Request::post("/orders")
        .body(Bytes::from_static(b"{}"))
        .expect("request");
    let error = client.send(request).await.expect_err("fails");
    assert!(matches!(error, ClientError::ServerError { .. }), "{error}");
    assert_eq!(instances.total_calls(), 1);
    let error = client.get("/orders").await.expect_err("fails everywhere");
    assert!(matches!(error, ClientError::ServerError { .. }), "{error}");
    assert_eq!(instances.total_calls(), 1 + 3, "a GET tries all three");
}

#[tokio::test(start_paused = true)]
async fn retries_stay_within_the_budget_when_everything_fails() {
    let instances = Instances::default();
    for i in 0..3 {
        instances.set(i, Behaviour::Answer(StatusCode::INTERNAL_SERVER_ERROR));
    }
    let config = ClientConfig {
        retry_ratio: 0.1,
        retry_floor_per_sec: 1,
        ..config()
    };
    // Breakers that never open, so every call really tries.
    let client = ServiceClient::with_transport(
        view(3, breaker(u32::MAX, Duration::from_secs(5))),
        config,
        instances.transport(),
    );
    let calls = 100;
    for _ in 0..calls {
        let error = client.get("/x").await.expect_err("everything fails");
        assert!(matches!(error, ClientError::ServerError { .. }), "{error}");
    }
    // Unbudgeted, 3 attempts per call would make 300. The budget allows a
    // 10 s reserve of 1 retry/s plus 10% of calls.
    let attempts = instances.total_calls();
    assert!(attempts > calls, "some retries happen: {attempts}");
    assert!(
        attempts <= calls + 10 + calls / 10,
        "retries capped: {attempts}"
    );
}

#[tokio::test(start_paused = true)]
async fn with_every_breaker_open_calls_fail_fast_and_readiness_waits_for_a_half_open() {
    let instances = Instances::default();
    instances.set(0, Behaviour::Refuse);
    instances.set(1, Behaviour::Refuse);
    let view = view(2, breaker(1, Duration::from_secs(5)));
    let mut client =
        ServiceClient::with_transport(Arc::clone(&view), config(), instances.transport());
    // Instance 0 opens now; instance 1 after the 10 ms backoff.
    let first_opened = Instant::now();
    let error = client.get("/x").await.expect_err("both refuse");
    assert!(matches!(error, ClientError::Connect { .. }), "{error}");
    assert_eq!([instances.calls(0), instances.calls(1)], [1, 1]);
    let started = Instant::now();
    let error = client.get("/x").await.expect_err("both open");
    assert!(
        matches!(error, ClientError::AllUnavailable { .. }),
        "{error}"
    );
    assert_eq!(started.elapsed(), Duration::ZERO, "failed fast");
    assert_eq!(
        [instances.calls(0), instances.calls(1)],
        [1, 1],
        "untouched"
    );
    // As a tower service it is not ready while both are open...
    type Body = http_body_util::Full<Bytes>;
    let waited = tokio::time::timeout(
        Duration::from_millis(4900),
        ServiceExt::<Request<Body>>::ready(&mut client),
    )
    .await;
    assert!(waited.is_err(), "not ready while every breaker is open");
    // ...and ready the moment one half-opens.
    ServiceExt::<Request<Body>>::ready(&mut client)
        .await
        .expect("ready");
    assert_eq!(first_opened.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_probe_given_up_by_its_caller_frees_the_slot_for_the_next() {
    let instances = Instances::default();
    instances.set(0, Behaviour::Refuse);
    let view = view(1, breaker(1, Duration::from_secs(5)));
    let mut events = view.subscribe();
    let client = ServiceClient::with_transport(Arc::clone(&view), config(), instances.transport());
    client.get("/x").await.expect_err("refused");
    next_event(&mut events, |k| {
        matches!(k, EventKind::BreakerHalfOpened { .. })
    })
    .await;
    instances.set(0, Behaviour::Hang);
    // The probe hangs and its caller gives up first.
    let gave_up = tokio::time::timeout(Duration::from_millis(50), client.get("/x")).await;
    assert!(gave_up.is_err());
    instances.set(0, Behaviour::Answer(StatusCode::OK));
    client
        .get("/x")
        .await
        .expect("the slot is free: this call probes");
    next_event(&mut events, |k| {
        matches!(k, EventKind::BreakerClosed { .. })
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_view_and_the_retry_policy_compose_with_towers_own_balancer() {
    use tower::{
        balance::p2c,
        load::{CompleteOnResponse, PendingRequestsDiscover},
        ServiceBuilder,
    };
    let instances = Instances::default();
    instances.set(2, Behaviour::Refuse);
    let view = view(3, breaker(1, Duration::from_secs(30)));
    let mut events = view.subscribe();
    // Trip instance 2's breaker: round-robin visits it once in three calls.
    let client = ServiceClient::with_transport(Arc::clone(&view), config(), instances.transport());
    for _ in 0..3 {
        client.get("/x").await.expect("retried elsewhere");
    }
    breaker_opened(&mut events).await;
    assert_eq!(instances.calls(2), 1);

    let attempts = NewAttempt::new(instances.transport(), Duration::from_millis(100));
    let discover = PendingRequestsDiscover::new(
        ViewDiscover::new(Arc::clone(&view), attempts),
        CompleteOnResponse::default(),
    );
    let limits = Retries::default()
        .max_attempts(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(10))
        .budget(0.2, 10);
    let mut service = ServiceBuilder::new()
        .retry(RetryPolicy::new(Arc::clone(&view), limits))
        .map_err(|e: tower::BoxError| match e.downcast::<ClientError>() {
            Ok(error) => *error,
            Err(other) => panic!("not a client error: {other}"),
        })
        // tower's Retry clones its service per call; its balancer can't be
        // cloned, so it sits behind a buffer.
        .buffer(16)
        .service(p2c::Balance::new(discover));
    for _ in 0..30 {
        let call = Call::new(
            Request::get("/x").body(Bytes::new()).expect("request"),
            Duration::from_secs(2),
        );
        let answer = service.ready().await.expect("ready").call(call).await;
        let instance = served_by(&answer.expect("answered")).id;
        assert_ne!(instance, id(2), "the open breaker gates it out");
    }
    assert_eq!(instances.calls(2), 1);
}

/// Three instances answering in 1 ms (`slow`: that one in 40 ms) and a
/// latency-balanced client of them.
fn three_latency_balanced(
    slow: Option<usize>,
) -> (Instances, ServiceClient<impl beacon::client::Transport>) {
    let instances = Instances::default();
    for i in 0..3 {
        instances.set(i, Behaviour::Slow(Duration::from_millis(1)));
    }
    if let Some(i) = slow {
        instances.set(i, Behaviour::Slow(Duration::from_millis(40)));
    }
    let client = ServiceClient::with_transport(
        view(3, BreakerConfig::default()),
        least_loaded(),
        instances.transport(),
    );
    (instances, client)
}

#[tokio::test(start_paused = true)]
async fn least_loaded_drains_a_slow_instance() {
    let (instances, client) = three_latency_balanced(Some(1));
    for _ in 0..300 {
        client.get("/x").await.expect("answer");
    }
    // A few while the others are still unmeasured (an unmeasured instance
    // ties with its rival), then none: it loses every draw it is in.
    let slow = instances.calls(1);
    assert!(slow <= 10, "the 40 ms instance got {slow} of 300 calls");
    // The rest go to the fast two, each a fair share (145 expected; the
    // draws are random, so with room: about 1 run in 40 saw under 120).
    for fast in [0, 2] {
        let calls = instances.calls(fast);
        assert!(calls >= 100, "instance {fast} got only {calls} of 300");
    }
}

#[tokio::test(start_paused = true)]
async fn least_loaded_shares_evenly_among_equal_instances() {
    let (instances, client) = three_latency_balanced(None);
    for _ in 0..600 {
        client.get("/x").await.expect("answer");
    }
    for i in 0..3 {
        let calls = instances.calls(i);
        assert!((140..=260).contains(&calls), "instance {i}: {calls} of 600");
    }
}

#[tokio::test(start_paused = true)]
async fn a_healed_instance_wins_its_share_back_as_its_slowness_decays() {
    let (instances, client) = three_latency_balanced(Some(1));
    for _ in 0..100 {
        client.get("/x").await.expect("answer");
    }
    instances.set(1, Behaviour::Slow(Duration::from_millis(1)));
    // A call every 100 ms for 40 s: within about τ·ln(40) ≈ 4 s its
    // estimate has decayed to the others' and it is drawn again.
    let healed_at = instances.calls(1);
    for _ in 0..400 {
        client.get("/x").await.expect("answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let regained = instances.calls(1) - healed_at;
    assert!(
        regained >= 60,
        "the healed instance got {regained} of 400 calls"
    );
}

#[tokio::test(start_paused = true)]
async fn nearly_equal_instances_share_evenly_not_by_who_measures_fastest() {
    let instances = Instances::default();
    // Whole milliseconds: tokio's timer rounds up to the next one.
    for (i, ms) in [(0, 10), (1, 11), (2, 13)] {
        instances.set(i, Behaviour::Slow(Duration::from_millis(ms)));
    }
    let client = ServiceClient::with_transport(
        view(3, BreakerConfig::default()),
        least_loaded(),
        instances.transport(),
    );
    for _ in 0..600 {
        client.get("/x").await.expect("answer");
    }
    for i in 0..3 {
        let calls = instances.calls(i);
        assert!((140..=260).contains(&calls), "instance {i}: {calls} of 600");
    }
}

fn ejecting(open_for: Duration) -> BreakerConfig {
    BreakerConfig {
        failure_rate: Some(beacon::FailureRate::default()),
        ..breaker(5, open_for)
    }
}

#[tokio::test(start_paused = true)]
async fn an_instance_failing_a_third_of_its_calls_is_ejected_by_its_failure_rate() {
    let instances = Instances::default();
    instances.set(1, Behaviour::FailEvery(3));
    let view = view(3, ejecting(Duration::from_secs(30)));
    let mut events = view.subscribe();
    let client = ServiceClient::with_transport(Arc::clone(&view), config(), instances.transport());
    answered(&client, 90, "failures are retried elsewhere").await;
    breaker_opened(&mut events).await;
    // Never five failures in a row: only the rate could open it, after at
    // least 10 of its calls, within the 20-call window.
    let calls = instances.calls(1);
    assert!((10..=20).contains(&calls), "ejected after {calls} calls");
    let states: Vec<BreakerState> = client
        .snapshot()
        .instances
        .iter()
        .map(|i| i.breaker)
        .collect();
    assert_eq!(states[1], BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn when_every_instance_is_flaky_the_failure_rate_ejects_no_more_than_the_cap() {
    let instances = Instances::default();
    for i in 0..3 {
        instances.set(i, Behaviour::FailEvery(2));
    }
    let view = view(3, ejecting(Duration::from_secs(30)));
    let client = ServiceClient::with_transport(Arc::clone(&view), config(), instances.transport());
    for _ in 0..200 {
        // Half of all calls fail somewhere; with retries most still answer.
        let _ = client.get("/x").await;
    }
    let open = client
        .snapshot()
        .instances
        .iter()
        .filter(|i| i.breaker != BreakerState::Closed)
        .count();
    assert_eq!(
        open, 1,
        "at most half of three, and at least one, may be out"
    );
}

/// In turn (so the first call goes to instance 0), hedging after exactly
/// `delay`, within an attempt timeout of 1 s.
fn hedged(delay: Duration) -> ClientConfig {
    ClientConfig {
        attempt_timeout: Duration::from_secs(1),
        hedging: Some(Hedging::default().delay_between(delay, delay)),
        ..config()
    }
}

#[tokio::test(start_paused = true)]
async fn a_late_first_attempt_is_hedged_at_the_delay_and_not_before() {
    let instances = Instances::default();
    instances.set(0, Behaviour::Slow(Duration::from_millis(29)));
    let client = ServiceClient::with_transport(
        view(2, breaker(5, Duration::from_secs(30))),
        hedged(Duration::from_millis(30)),
        instances.transport(),
    );
    let started = Instant::now();
    let answer = client.get("/x").await.expect("answer");
    assert_eq!(started.elapsed(), Duration::from_millis(29));
    assert_eq!(served_by(&answer).id, id(0), "not hedged: on time");
    assert_eq!(client.hedges().sent, 0);

    instances.set(0, Behaviour::Hang);
    client.get("/x").await.expect("instance 1's turn");
    let started = Instant::now();
    let answer = client.get("/x").await.expect("the hedge answers");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(30),
        "exactly at the delay"
    );
    let served = served_by(&answer);
    assert_eq!((served.id, served.attempts), (id(1), 2));
    assert_eq!((client.hedges().sent, client.hedges().won), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn without_budget_a_late_call_waits_for_its_first_attempt() {
    let instances = Instances::default();
    instances.set(0, Behaviour::Slow(Duration::from_millis(300)));
    let config = ClientConfig {
        hedging: Some(
            Hedging::default()
                .delay_between(Duration::from_millis(30), Duration::from_millis(30))
                .budget(0.0, 0),
        ),
        ..hedged(Duration::from_millis(30))
    };
    let client = ServiceClient::with_transport(
        view(2, breaker(5, Duration::from_secs(30))),
        config,
        instances.transport(),
    );
    let started = Instant::now();
    let answer = client.get("/x").await.expect("the slow answer");
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(served_by(&answer).id, id(0));
    assert_eq!(client.hedges().sent, 0, "no budget, no hedge");
}

#[tokio::test(start_paused = true)]
async fn a_hung_instance_gets_its_breaker_opened_although_hedges_answer_every_call() {
    let instances = Instances::default();
    instances.set(0, Behaviour::Hang);
    let view = view(2, breaker(1, Duration::from_secs(30)));
    let mut events = view.subscribe();
    let client = ServiceClient::with_transport(
        Arc::clone(&view),
        hedged(Duration::from_millis(30)),
        instances.transport(),
    );
    let started = Instant::now();
    for _ in 0..4 {
        let call = Instant::now();
        client.get("/x").await.expect("answered");
        assert!(
            call.elapsed() <= Duration::from_millis(30),
            "{:?}",
            call.elapsed()
        );
    }
    // Every call that went first to instance 0 was won by its hedge.
    let counts = client.hedges();
    assert!(counts.sent >= 2 && counts.won == counts.sent, "{counts:?}");
    // The first attempts, left to finish alone, time out after 1 s and
    // tell the breaker.
    breaker_opened(&mut events).await;
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(client.snapshot().instances[0].breaker, BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn the_metrics_say_what_the_client_did() {
    let instances = Instances::default();
    instances.set(1, Behaviour::Refuse);
    let view = view(2, breaker(1, Duration::from_secs(30)));
    // Hedging off: the latencies are the attempts', not the hedge's.
    let client = ServiceClient::with_transport(view, config(), instances.transport());
    let mut registry = prometheus_client::registry::Registry::default();
    beacon::metrics::register(&mut registry, &client);
    for _ in 0..4 {
        client.get("/x").await.expect("answered");
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for line in [
        r#"client_attempts_total{service="ratings",instance="ratings-1",outcome="success"} 4"#,
        r#"client_attempts_total{service="ratings",instance="ratings-2",outcome="failure"} 1"#,
        r#"client_breaker{service="ratings",instance="ratings-2",state="open"} 1"#,
        r#"client_breaker{service="ratings",instance="ratings-1",state="closed"} 1"#,
        r#"client_retries_total{service="ratings"} 1"#,
        r#"client_hedges_total{service="ratings",result="sent"} 0"#,
        // First attempts that answered: the one refused was not, and its
        // retry was not a first attempt.
        r#"client_attempt_duration_seconds_count{service="ratings"} 3"#,
        r#"client_attempt_duration_seconds_bucket{le="0.001",service="ratings"} 3"#,
        r#"client_attempt_duration_seconds_bucket{le="+Inf",service="ratings"} 3"#,
        r#"client_in_flight{service="ratings",instance="ratings-1"} 0"#,
        // Learned limits start at their first probe's 3 (nobody keeps to
        // them here); no instance reported its load.
        r#"client_learned_limit{service="ratings",instance="ratings-1"} 3"#,
        r#"client_retries_held_back_total{service="ratings"} 0"#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(!text.contains("client_reported_utilization{"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn budget_settings_out_of_range_are_brought_in_range_not_a_panic() {
    let instances = Instances::default();
    instances.set(0, Behaviour::Answer(StatusCode::INTERNAL_SERVER_ERROR));
    let config = ClientConfig {
        retry_ratio: -1.0,
        retry_floor_per_sec: u32::MAX,
        hedging: Some(Hedging::default().budget(f32::NAN, u32::MAX)),
        ..config()
    };
    let client = ServiceClient::with_transport(
        view(2, breaker(5, Duration::from_secs(30))),
        config,
        instances.transport(),
    );
    let answer = client.get("/x").await.expect("retried on instance 1");
    assert_eq!(served_by(&answer).id, id(1));
    let client = ServiceClient::with_transport(
        view(2, breaker(5, Duration::from_secs(30))),
        ClientConfig {
            retry_ratio: 5000.0,
            ..ClientConfig::default()
        },
        instances.transport(),
    );
    assert!(client.get("/x").await.is_ok());
}
