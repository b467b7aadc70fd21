//! A real instance made to fail half its calls at run time is taken out of
//! rotation by its failure rate, with no caller error: three real
//! `beacon-ratings` processes, a real registry, Beacon's client with its
//! default settings.

mod support;

use beacon::{BreakerState, ClientConfig, Resolver, ResolverConfig, ServiceClient};
use beacon_kit::process::Service;
use beacon_ratings::wire::{rating_requests, FaultSettings};
use std::time::Duration;
use support::TestRegistry;
use tokio::time::Instant;

/// Rating requests instance `url` has taken, from its `/_metrics`.
async fn taken(http: &reqwest::Client, url: &str) -> u64 {
    let text = support::metrics_text(http, url).await;
    rating_requests(&text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_failing_half_its_calls_is_ejected_without_a_caller_error() {
    let registry = TestRegistry::start(None).await;
    let instances: Vec<Service> = (1..=3)
        .map(|n| support::start_ratings(&registry.url, n, &[]))
        .collect();
    let client = beacon::RegistryClient::from_list(&registry.url, None).expect("registry client");
    let resolver = Resolver::new(client, ResolverConfig::default());
    let service = "ratings".parse().expect("name");
    let beacon = ServiceClient::new(&resolver, &service, ClientConfig::default());
    let deadline = Instant::now() + Duration::from_secs(10);
    while beacon.snapshot().instances.len() < 3 {
        assert!(Instant::now() < deadline, "three instances never listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let http = reqwest::Client::new();
    let flaky = instances[1].url.clone();
    let half = FaultSettings {
        fail_percent: 50,
        ..FaultSettings::default()
    };
    let answer = http
        .put(format!("{flaky}/_faults"))
        .json(&half)
        .send()
        .await
        .expect("PUT /_faults");
    assert!(answer.status().is_success());

    // Tens of calls per second, as most services see: each one succeeds
    // (a failure is retried elsewhere) until the flaky one's breaker opens.
    let state = || {
        let snapshot = beacon.snapshot();
        let flaky = snapshot
            .instances
            .iter()
            .find(|i| i.address.as_str() == flaky);
        flaky.map(|i| i.breaker)
    };
    let mut calls = 0;
    while state() == Some(BreakerState::Closed) {
        assert!(
            Instant::now() < deadline,
            "the flaky instance was never ejected"
        );
        let answer = beacon.get("/ratings/camera").await;
        assert!(answer.is_ok(), "call {calls} failed: {answer:?}");
        calls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(calls >= 3, "ejected after {calls} calls: by what?");

    // Once ejected, it takes (next to) none of the calls.
    let taken_before = taken(&http, &flaky).await;
    for n in 0..100 {
        let answer = beacon.get("/ratings/camera").await;
        assert!(
            answer.is_ok(),
            "call {n} after the ejection failed: {answer:?}"
        );
    }
    let reached = taken(&http, &flaky).await - taken_before;
    assert!(
        reached <= 5,
        "{reached} of 100 calls still reached the ejected instance"
    );
    for instance in instances {
        instance.stop().expect("stops");
    }
    registry.stop().await;
}
