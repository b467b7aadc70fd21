//! The client library against a real registry and real HTTP backends on
//! 127.0.0.1: leases, resolution, breakers, health checks, failover. The
//! client's parts are tested on the paused clock in `client_parts.rs`.

mod support;

use beacon::{
    BreakerConfig, BreakerState, ClientConfig, ClientError, EventKind, HealthCheckConfig, Lease,
    RegistryClient, RegistryClientConfig, Resolver, ResolverConfig, ServedBy, ServiceClient,
};
use std::time::Duration;
use support::{
    backend::{Backend, Mode},
    cluster::{breaker, fast_client, ratings, registration, Cluster, PATIENCE},
    eventually, get_text, TestRegistry,
};
use tokio::time::Instant;

#[tokio::test]
async fn requests_round_robin_over_every_instance() {
    let cluster = Cluster::start(3, BreakerConfig::default(), fast_client()).await;
    cluster.get_ok(30).await;
    assert_eq!(cluster.hits(), [10, 10, 10]);
    let response = cluster.client.get("/ratings/camera").await.expect("ok");
    let served = response.extensions().get::<ServedBy>().expect("served-by");
    assert_eq!(served.attempts, 1);
    assert!(served.id.as_str().starts_with("ratings-"));
}

#[tokio::test]
async fn a_killed_instance_costs_callers_nothing() {
    let mut cluster = Cluster::start(3, BreakerConfig::default(), fast_client()).await;
    let killed = cluster.backends.remove(1);
    let killed_url = killed.url.clone();
    killed.kill().await;
    // Every call succeeds: a refused connection is retried on another instance.
    cluster.get_ok(30).await;
    let snapshot = cluster.client.snapshot();
    let dead = snapshot
        .instances
        .iter()
        .find(|i| i.address.as_str() == killed_url)
        .expect("still listed: its lease is alive");
    assert!(dead.failures >= 1);
    assert!(
        dead.last_error
            .as_deref()
            .is_some_and(|e| e.contains("connect")),
        "{dead:?}"
    );
}

#[tokio::test]
async fn a_hanging_instance_is_skipped_until_a_single_probe_finds_it_well() {
    // Open for 2 s: the ten calls below must fit in that window, which leaves
    // 200 ms a call for a loaded machine (they take a few ms each).
    let cluster = Cluster::start(3, breaker(2, 2_000), fast_client()).await;
    cluster.backends[1].set(Mode::Hang);
    // Calls keep succeeding; the hanging instance costs one timeout each
    // until two consecutive failures open its breaker.
    eventually(PATIENCE, "backend 1 breaker Open under traffic", || async {
        if cluster.breaker_of(1) == BreakerState::Open {
            return Some(());
        }
        cluster.get_ok(1).await;
        assert!(
            cluster.backends[1].hits() <= 2,
            "opened after the threshold"
        );
        None
    })
    .await;
    let at_open = cluster.backends[1].hits();
    assert_eq!(at_open, 2);
    // Round robin would have sent it three of these.
    cluster.get_ok(10).await;
    assert_eq!(cluster.backends[1].hits(), at_open, "no traffic while open");

    // Half-open: of many concurrent calls exactly one probes it.
    cluster.until_breaker(1, BreakerState::HalfOpen).await;
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let client = cluster.client.clone();
            tokio::spawn(async move { client.get("/ratings/camera").await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task").expect("call").status(), 200);
    }
    assert_eq!(cluster.backends[1].hits(), at_open + 1, "exactly one probe");
    assert_eq!(
        cluster.breaker_of(1),
        BreakerState::Open,
        "failed probe reopens"
    );

    // It answers again: the next probe closes the breaker, and it is back in rotation.
    cluster.backends[1].set(Mode::Answer);
    cluster.until_breaker(1, BreakerState::HalfOpen).await;
    cluster.get_ok_until_breaker(1, BreakerState::Closed).await;
    let before = cluster.hits();
    cluster.get_ok(30).await;
    let after = cluster.hits();
    let gained: Vec<usize> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(gained, [10, 10, 10]);
}

#[tokio::test]
async fn calls_go_on_from_the_last_known_view_while_the_registry_is_down() {
    let mut cluster = Cluster::start(3, BreakerConfig::default(), fast_client()).await;
    let mut events = cluster.resolver.subscribe();
    cluster.stop_registry().await;
    eventually(PATIENCE, "the registry to be reported lost", || async {
        (!cluster.client.snapshot().registry_reachable).then_some(())
    })
    .await;
    let before = cluster.hits();
    cluster.get_ok(30).await;
    let gained: Vec<usize> = cluster
        .hits()
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    assert_eq!(gained, [10, 10, 10], "all three still in rotation");
    let lost = std::iter::from_fn(|| events.try_recv().ok())
        .any(|e| matches!(e.kind, EventKind::RegistryLost { .. }));
    assert!(lost, "a registry_lost event was sent");
}

#[tokio::test]
async fn a_registry_restarted_empty_is_refilled_within_one_heartbeat_interval() {
    // A 3 s lease heartbeats every second.
    let mut cluster =
        Cluster::start_with(3, BreakerConfig::default(), fast_client(), 3_000, None).await;
    cluster.restart_registry().await;
    let restarted = Instant::now();
    let registry = RegistryClient::from_list(&cluster.registry_addr_url(), None).expect("client");
    loop {
        // Callers notice nothing meanwhile: the view keeps the instances.
        cluster.get_ok(1).await;
        let listed = registry
            .resolve(&ratings())
            .await
            .expect("resolve")
            .instances
            .len();
        if listed == 3 {
            break;
        }
        assert!(restarted.elapsed() < PATIENCE, "leases never re-registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = restarted.elapsed();
    // Each lease re-registered at its first heartbeat to the new registry:
    // that heartbeat was refused (404) and the registration followed at once,
    // so the new registry saw exactly one refused heartbeat and one
    // registration per lease. This is what keeps the refill within one
    // heartbeat interval, checked without timing it.
    let metrics = reqwest::get(format!("{}/_metrics", cluster.registry_addr_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert_eq!(
        refused_heartbeats(&metrics),
        3,
        "one refused heartbeat per lease:\n{metrics}"
    );
    assert!(
        metrics.contains("\nbeacon_registry_registrations_total 3\n"),
        "one registration per lease:\n{metrics}"
    );
    // One heartbeat interval (1 s) after the restart, plus generous slack
    // for a loaded machine.
    assert!(
        took < Duration::from_secs(5),
        "re-registered after {took:?}"
    );
    assert!(cluster.client.snapshot().registry_reachable);
    cluster.until_instances(3).await;
}

/// Heartbeats the registry answered `404` (the lease is unknown there), from
/// its request-latency histogram.
fn refused_heartbeats(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("beacon_registry_http_request_duration_seconds_count{"))
        .filter(|l| l.contains("route=\"/v1/services/{service}/instances/{id}/heartbeat\""))
        .filter(|l| l.contains("status=\"404\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_second_registry_url_is_used_when_the_first_is_down() {
    let registry = TestRegistry::start(None).await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    }; // dropped: connections to it are refused
    let both = RegistryClient::new(
        [dead.as_str(), registry.url.as_str()],
        None,
        RegistryClientConfig::default(),
    )
    .expect("client");
    let backend = Backend::start("ratings-1").await;
    let lease = Lease::start(
        both.clone(),
        ratings(),
        "ratings-1".parse().expect("id"),
        registration(&backend, 5_000),
    );
    lease.registered().await;
    let resolver = Resolver::new(both, ResolverConfig::default());
    let client = ServiceClient::new(&resolver, &ratings(), fast_client());
    let response = client.get("/ratings/camera").await.expect("served");
    assert_eq!(response.status(), 200);
    assert!(client.snapshot().registry_reachable);
    lease
        .shutdown()
        .await
        .expect("deregistered through the live registry");
    eventually(
        PATIENCE,
        "the deregistration to reach the client",
        || async { client.view().endpoints().is_empty().then_some(()) },
    )
    .await;
}

/// The URL of a port nobody listens on.
fn nobody_listening() -> String {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://{}", free.local_addr().expect("address"))
}

#[tokio::test]
async fn a_lease_that_cannot_register_says_why_within_the_time_given() {
    let url = nobody_listening();
    let backend = Backend::start("ratings-1").await;
    let lease = Lease::start(
        RegistryClient::from_list(&url, None).expect("client"),
        ratings(),
        "ratings-1".parse().expect("id"),
        registration(&backend, 3_000),
    );
    let started = Instant::now();
    let error = lease
        .registered_within(Duration::from_millis(300))
        .await
        .expect_err("no registry");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up in time"
    );
    let text = error.to_string();
    assert!(
        text.starts_with("ratings/ratings-1 not registered within 300ms"),
        "{text}"
    );
    assert!(text.contains(&url), "the URL is named: {text}");
}

#[tokio::test]
async fn a_registry_never_reached_is_named_in_the_error() {
    let url = nobody_listening();
    let resolver = Resolver::new(
        RegistryClient::from_list(&url, None).expect("client"),
        ResolverConfig::default(),
    );
    let config = ClientConfig {
        deadline: Duration::from_millis(500),
        ..ClientConfig::default()
    };
    let client = ServiceClient::new(&resolver, &ratings(), config);
    let error = client.get("/x").await.expect_err("no registry");
    let ClientError::RegistryUnreachable { service, error } = &error else {
        panic!("expected RegistryUnreachable, got {error}");
    };
    assert_eq!(service.as_str(), "ratings");
    assert!(error.contains(&url), "the URL is named: {error}");
    assert!(error.contains("no registry reachable"), "{error}");
}

#[tokio::test]
async fn nothing_registered_fails_fast() {
    let registry = TestRegistry::start(None).await;
    let resolver = Resolver::new(
        RegistryClient::from_list(&registry.url, None).expect("client"),
        ResolverConfig::default(),
    );
    // Long timeouts, so that waiting on anything (the deadline, an attempt)
    // would show: failing fast means well under them.
    let config = ClientConfig {
        attempt_timeout: Duration::from_secs(30),
        deadline: Duration::from_secs(30),
        ..ClientConfig::default()
    };
    let client = ServiceClient::new(&resolver, &ratings(), config);
    let started = Instant::now();
    let error = client.get("/x").await.expect_err("nothing to call");
    assert!(matches!(error, ClientError::NoInstances { .. }), "{error}");
    assert!(error.is_unavailable());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}, as if it waited on the 30 s deadline",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_instance_that_registers_again_after_expiry_goes_straight_to_half_open() {
    let registry = TestRegistry::start(None).await;
    let registry_client = RegistryClient::from_list(&registry.url, None).expect("client");
    let backend = Backend::start("ratings-1").await;
    let id = "ratings-1".parse().expect("id");
    // Registered by hand, without a lease, so it can lapse.
    registry_client
        .register(&ratings(), &id, &registration(&backend, 1_000))
        .await
        .expect("register");
    let resolver = Resolver::new(
        registry_client.clone(),
        ResolverConfig {
            breaker: breaker(1, 60_000),
            // Recovery must come from the re-registration alone.
            health_check: None,
            ..ResolverConfig::default()
        },
    );
    let client = ServiceClient::new(&resolver, &ratings(), fast_client());
    backend.set(Mode::Hang);
    client.get("/x").await.expect_err("hangs");
    assert_eq!(client.snapshot().instances[0].breaker, BreakerState::Open);

    eventually(PATIENCE, "the lease to lapse", || async {
        client.view().endpoints().is_empty().then_some(())
    })
    .await;
    backend.set(Mode::Answer);
    // A long lease this time: it must not lapse before the probe below.
    registry_client
        .register(&ratings(), &id, &registration(&backend, 60_000))
        .await
        .expect("register");
    let half_open = eventually(PATIENCE, "the instance back, half-open", || async {
        let snapshot = client.snapshot();
        snapshot
            .instances
            .first()
            .map(|i| i.breaker)
            .filter(|b| *b != BreakerState::Open)
    })
    .await;
    assert_eq!(
        half_open,
        BreakerState::HalfOpen,
        "not a fresh closed breaker, and not 60 s of waiting"
    );
    assert_eq!(client.get("/x").await.expect("probe").status(), 200);
    assert_eq!(client.snapshot().instances[0].breaker, BreakerState::Closed);
}

#[tokio::test]
async fn the_client_composes_as_a_tower_service() {
    use tower::{Service, ServiceBuilder, ServiceExt};
    let cluster = Cluster::start(1, BreakerConfig::default(), fast_client()).await;
    let mut service = ServiceBuilder::new()
        .map_response(|r: http::Response<beacon::client::ResponseBody>| r.status().as_u16())
        .service(cluster.client.clone());
    let request = http::Request::get("/ratings/camera")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let status =
        ServiceExt::<http::Request<http_body_util::Full<bytes::Bytes>>>::ready(&mut service)
            .await
            .expect("ready")
            .call(request)
            .await
            .expect("call");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_lease_registers_once_the_registry_comes_up_and_deregisters_when_dropped() {
    // Reserve a port, then start the registry there only after the lease began.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").to_string()
    };
    let registry_client =
        RegistryClient::from_list(&format!("http://{addr}"), None).expect("client");
    let backend = Backend::start("ratings-1").await;
    let lease = Lease::start(
        registry_client.clone(),
        ratings(),
        "ratings-1".parse().expect("id"),
        registration(&backend, 3_000),
    );
    eventually(PATIENCE, "the lease to report retrying", || async {
        matches!(lease.status(), beacon::LeaseStatus::Retrying(_)).then_some(())
    })
    .await;
    let registry = TestRegistry::start_at(&addr, None).await;
    tokio::time::timeout(PATIENCE, lease.registered())
        .await
        .expect("registered once the registry is up");
    assert_eq!(
        registry_client
            .resolve(&ratings())
            .await
            .expect("resolve")
            .instances
            .len(),
        1
    );

    drop(lease);
    eventually(PATIENCE, "the dropped lease to deregister", || async {
        let listed = registry_client
            .resolve(&ratings())
            .await
            .ok()?
            .instances
            .len();
        (listed == 0).then_some(())
    })
    .await;
    registry.stop().await;
}

#[tokio::test]
async fn clients_of_one_service_share_one_view_and_one_long_poll() {
    let cluster = Cluster::start(1, BreakerConfig::default(), fast_client()).await;
    let other = ServiceClient::new(&cluster.resolver, &ratings(), ClientConfig::default());
    assert!(std::sync::Arc::ptr_eq(cluster.client.view(), other.view()));
    let registry = cluster.registry.as_ref().expect("running");
    eventually(PATIENCE, "exactly one parked watch", || async {
        let metrics = get_text(registry.at("/_metrics")).await?;
        metrics
            .contains("beacon_registry_parked_watchers 1\n")
            .then_some(())
    })
    .await;
    other.get("/x").await.expect("served");
}

/// Health checks every 100 ms that give up after 100 ms: an instance's
/// recovery is seen within a fraction of a second.
fn quick_health_checks() -> HealthCheckConfig {
    HealthCheckConfig {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
        ..HealthCheckConfig::default()
    }
}

#[tokio::test]
async fn health_checks_close_the_breaker_of_a_recovered_instance_without_any_traffic() {
    let health = quick_health_checks();
    // A 60 s open time: only a health check can bring it back this soon.
    let cluster =
        Cluster::start_with(2, breaker(1, 60_000), fast_client(), 15_000, Some(health)).await;
    let mut events = cluster.resolver.subscribe();
    cluster.backends[1].set(Mode::Hang);
    cluster.get_ok_until_breaker(1, BreakerState::Open).await;
    // Still hanging: health checks fail, it stays open. The window is the
    // claim (several check intervals of nothing changing), not a settling time.
    let hits = cluster.backends[1].hits();
    cluster
        .holds_breaker(1, BreakerState::Open, Duration::from_millis(500))
        .await;

    let resumed = Instant::now();
    cluster.backends[1].set(Mode::Answer);
    cluster.until_breaker(1, BreakerState::Closed).await;
    // Generous for a loaded machine, and still far under the 60 s open time.
    assert!(
        resumed.elapsed() < Duration::from_secs(10),
        "closed {:?} after it answered",
        resumed.elapsed()
    );
    assert_eq!(
        cluster.backends[1].hits(),
        hits,
        "recovered with no caller traffic"
    );
    let kinds: Vec<String> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|e| {
            format!("{:?}", e.kind)
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let tail: Vec<&str> = kinds
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["BreakerHalfOpened", "BreakerClosed"], "{kinds:?}");
    cluster.get_ok(10).await;
    assert_eq!(cluster.backends[1].hits(), hits + 5, "back in rotation");
}

#[tokio::test]
async fn one_recovery_task_per_endpoint_however_often_its_breaker_cycles() {
    // Health checks every 50 ms that take 40 ms each and fail: one task per
    // endpoint sends them one after another, never two at once. A second
    // task (one per opening, say) would overlap its checks with the first's.
    let health = HealthCheckConfig {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
        ..HealthCheckConfig::default()
    };
    let breaker = BreakerConfig {
        failure_threshold: 1,
        open_for: Duration::from_millis(100),
        max_open_for: Duration::from_millis(200),
        jitter: 0.0,
        ..BreakerConfig::default()
    };
    let cluster = Cluster::start_with(2, breaker, fast_client(), 15_000, Some(health)).await;
    let mut events = cluster.resolver.subscribe();
    cluster.backends[1].set_health_delay(Duration::from_millis(40));
    cluster.backends[1].set(Mode::Fail);
    cluster.get_ok_until_breaker(1, BreakerState::Open).await;
    // Open → (open time passes) half-open → a probe fails → open again,
    // over and over, with callers' requests taking some of the probes (the
    // way a second task used to start beside the first): several cycles.
    let traffic = {
        let client = cluster.client.clone();
        tokio::spawn(async move {
            for _ in 0..1000 {
                let _ = client.get("/x").await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let failing = cluster.backends[1].url.clone();
    let mut openings = 0;
    let deadline = Instant::now() + PATIENCE;
    while openings < 6 {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(event)) => {
                if let EventKind::BreakerOpened { address, .. } = event.kind {
                    openings += usize::from(address.as_str() == failing);
                }
            }
            Ok(Err(e)) => panic!("events: {e}"),
            Err(_) => panic!("only {openings} openings within {PATIENCE:?}"),
        }
    }
    traffic.abort();
    let (checks, peak) = cluster.backends[1].health_checks();
    assert!(
        checks >= 3,
        "the probes went out as health checks: {checks}"
    );
    assert_eq!(peak, 1, "{checks} health checks, at most {peak} at once");
    // The healthy instance was never checked: its breaker never opened.
    assert_eq!(cluster.backends[0].health_checks(), (0, 0));
}

#[tokio::test]
async fn an_instance_that_hangs_again_and_again_is_back_each_time_it_answers() {
    let health = quick_health_checks();
    // A 60 s open time (doubling on each trip soon after the last): only
    // its health checks can bring it back this soon, every time.
    let cluster =
        Cluster::start_with(2, breaker(1, 60_000), fast_client(), 15_000, Some(health)).await;
    for round in 1..=3 {
        cluster.backends[1].set(Mode::Hang);
        cluster.get_ok_until_breaker(1, BreakerState::Open).await;
        // Hung for a few check intervals: its checks go unanswered.
        cluster
            .holds_breaker(1, BreakerState::Open, Duration::from_millis(400))
            .await;
        let resumed = Instant::now();
        cluster.backends[1].set(Mode::Answer);
        cluster.until_breaker(1, BreakerState::Closed).await;
        assert!(
            resumed.elapsed() < Duration::from_secs(5),
            "round {round}: closed {:?} after it answered",
            resumed.elapsed()
        );
    }
}

#[tokio::test]
async fn a_flaky_instance_whose_health_checks_pass_stays_out_once_it_flaps() {
    let health = quick_health_checks();
    let cluster =
        Cluster::start_with(2, breaker(1, 1_000), fast_client(), 15_000, Some(health)).await;
    cluster.backends[1].set(Mode::FailCalls);
    // First trip: its passing health check brings it back, and its next
    // calls fail at once: it trips again soon after closing.
    cluster.get_ok_until_breaker(1, BreakerState::Open).await;
    cluster.until_breaker(1, BreakerState::Closed).await;
    cluster.get_ok_until_breaker(1, BreakerState::Open).await;
    // Flapping: its health checks keep passing, and it stays out for its
    // doubled open time (2 s) all the same.
    cluster
        .holds_breaker(1, BreakerState::Open, Duration::from_millis(1_200))
        .await;
}

#[tokio::test]
async fn a_registry_that_answers_503_is_told_apart_from_none_answering() {
    // A registry whose store can't take writes: every write a 503.
    let app = axum::Router::new().fallback(|| async {
        (
            http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": {"code": "store_unavailable", "message": "etcd has no quorum"}})),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let backend = Backend::start("x").await;
    let registration = registration(&backend, 15_000);
    let id = "ratings-1".parse().expect("id");

    let answering = RegistryClient::from_list(&url, None).expect("client");
    let error = answering
        .register(&ratings(), &id, &registration)
        .await
        .expect_err("a 503");
    assert!(
        matches!(error, beacon::RegistryError::Unavailable(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("503"), "{error}");
    assert!(
        !error.to_string().contains("no registry reachable"),
        "{error}"
    );

    // Nobody listening: that is "no registry reachable".
    let silent = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let error = RegistryClient::from_list(&silent, None)
        .expect("client")
        .register(&ratings(), &id, &registration)
        .await
        .expect_err("nobody there");
    assert!(
        matches!(error, beacon::RegistryError::Unreachable(_)),
        "{error:?}"
    );
}
