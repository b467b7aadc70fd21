//! Full instances, not broken ones: real `beacon-ratings` processes that
//! shed past `--max-in-flight` or queue past their `capacity`, a real
//! registry, Beacon's client.

mod support;

use beacon::client::{AdaptiveLimit, ClientError, Limits, Retries};
use beacon::overload::{LoadReport, LOAD_METRICS_HEADER};
use beacon::{BreakerState, Resolver, ResolverConfig, ServiceClient};
use std::time::Duration;
use support::TestRegistry;
use tokio::time::Instant;

/// Waits until `client` lists `count` instances.
async fn listed(client: &ServiceClient, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.snapshot().instances.len() < count {
        assert!(Instant::now() < deadline, "{count} instances never listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_instance_sheds_and_its_calls_go_elsewhere_without_opening_its_breaker() {
    let registry = TestRegistry::start(None).await;
    let full = support::start_ratings(
        &registry.url,
        1,
        &["--max-in-flight", "2", "--delay-ms", "40"],
    );
    let _roomy = support::start_ratings(&registry.url, 2, &["--delay-ms", "5"]);
    let http = reqwest::Client::new();

    // Each answer it lets through says how loaded it is.
    let answer = http
        .get(format!("{}/ratings/camera", full.url))
        .send()
        .await
        .expect("GET");
    let report = answer
        .headers()
        .get(LOAD_METRICS_HEADER)
        .and_then(LoadReport::parse);
    assert!(report.is_some(), "{:?}", answer.headers());

    let resolver = Resolver::new(
        beacon::RegistryClient::from_list(&registry.url, None).expect("registry client"),
        ResolverConfig::default(),
    );
    let client = ServiceClient::builder(&resolver, "ratings")
        .build()
        .expect("client");
    listed(&client, 2).await;

    // Waves of 20 calls at once: the full instance takes two, sheds the
    // rest, and every shed call is answered by the other.
    for wave in 0..5 {
        let calls = (0..20).map(|_| client.get("/ratings/camera"));
        for (i, answer) in futures_util::future::join_all(calls)
            .await
            .into_iter()
            .enumerate()
        {
            assert!(answer.is_ok(), "wave {wave} call {i}: {answer:?}");
        }
    }
    let metrics = support::metrics_text(&http, &full.url).await;
    let shed = support::counter(&metrics, "beacon_ratings_shed_total");
    assert!(shed > 0, "nothing was shed:\n{metrics}");

    let snapshot = client.snapshot();
    let seen = snapshot
        .instances
        .iter()
        .find(|i| i.address.as_str() == full.url)
        .expect("the full instance is listed");
    assert_eq!(seen.breaker, BreakerState::Closed, "{seen:?}");
    assert_eq!(seen.failures, 0, "shed calls are not failures: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adaptive_limit_learns_what_a_full_instance_takes_and_fails_fast_past_it() {
    let registry = TestRegistry::start(None).await;
    let _full = support::start_ratings(&registry.url, 1, &["--capacity", "2", "--delay-ms", "20"]);
    let resolver = Resolver::new(
        beacon::RegistryClient::from_list(&registry.url, None).expect("registry client"),
        ResolverConfig::default(),
    );
    let client = ServiceClient::builder(&resolver, "ratings")
        .limits(Limits::default().adaptive(Some(AdaptiveLimit::default())))
        .retries(Retries::default().max_attempts(1))
        .hedging(None)
        .build()
        .expect("client");
    listed(&client, 1).await;

    // 30 callers in a loop against an instance that serves two at a time:
    // queueing shows in its answers' times, and the limit comes down.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut refused = 0;
    let learned = || client.snapshot().instances[0].learned_limit;
    while learned() > 8 || refused == 0 {
        assert!(
            Instant::now() < deadline,
            "limit still {} with {refused} refused",
            learned()
        );
        let calls = (0..30).map(|_| client.get("/ratings/camera"));
        for answer in futures_util::future::join_all(calls).await {
            match answer {
                Ok(_) => {}
                // Refused at once, no instance tried: not queued.
                Err(ClientError::AllAtCapacity { limit, .. }) => {
                    refused += 1;
                    assert!(limit <= 20, "{limit}");
                }
                Err(other) => panic!("{other:?}"),
            }
        }
    }
}
