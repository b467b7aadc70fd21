//! Slow start with real processes: an instance that joins a service
//! already in use gets a small share of the calls until it has warmed up.
//! In a file of its own, so that no other test's load skews the latency
//! estimates the balancer weighs beside the warm-up weight.

mod support;

use beacon::client::{ServedBy, SlowStart};
use beacon::{Resolver, ResolverConfig, ServiceClient};
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

/// The share of `calls` calls, `at_once` at a time, that `id` answered.
async fn share_of(client: &ServiceClient, id: &str, calls: usize, at_once: usize) -> f64 {
    let mut answered_by_it = 0;
    for _ in 0..calls / at_once {
        let wave = (0..at_once).map(|_| client.get("/ratings/camera"));
        for answer in futures_util::future::join_all(wave).await {
            let answer = answer.expect("answered");
            let served = answer.extensions().get::<ServedBy>().expect("served by");
            answered_by_it += usize::from(served.id.as_str() == id);
        }
    }
    answered_by_it as f64 / calls as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_joins_later_gets_a_smaller_share_until_it_has_warmed_up() {
    let registry = TestRegistry::start(None).await;
    // 10 ms of work: the latency estimates are the work, not the noise.
    let slow = ["--delay-ms", "10"];
    let _first = support::start_ratings(&registry.url, 1, &slow);
    let _second = support::start_ratings(&registry.url, 2, &slow);
    let window = Duration::from_secs(4);
    // Two callers side by side, each with its own view: one warms new
    // instances up, the other weighs them as warm ones at once.
    let caller = |slow_start: Option<SlowStart>| {
        let resolver = Resolver::new(
            beacon::RegistryClient::from_list(&registry.url, None).expect("registry client"),
            ResolverConfig::default(),
        );
        ServiceClient::builder(&resolver, "ratings")
            .slow_start(slow_start)
            .hedging(None)
            .build()
            .expect("client")
    };
    let warming = caller(Some(SlowStart::default().window(window)));
    let plain = caller(None);
    listed(&warming, 2).await;
    listed(&plain, 2).await;
    // The first answer's instances are warm: both take calls.
    assert!(share_of(&warming, "ratings-1", 40, 4).await > 0.2);

    let _third = support::start_ratings(&registry.url, 3, &slow);
    listed(&warming, 3).await;
    listed(&plain, 3).await;
    let joined = Instant::now();
    let (mut warming_share, mut plain_share) = (0.0, 0.0);
    for _ in 0..4 {
        warming_share += share_of(&warming, "ratings-3", 24, 4).await / 4.0;
        plain_share += share_of(&plain, "ratings-3", 24, 4).await / 4.0;
    }
    let early_took = joined.elapsed();
    eprintln!(
        "ratings-3's share in its first {early_took:?}: {warming_share:.2} with slow start, \
         {plain_share:.2} without"
    );
    assert!(
        early_took < window / 2 && warming_share < 0.75 * plain_share,
        "with slow start {warming_share:.2}, without {plain_share:.2}, in {early_took:?}"
    );
    tokio::time::sleep_until(joined + window).await;
    let later = share_of(&warming, "ratings-3", 120, 4).await;
    assert!(later > 0.2, "warm, it took only {later:.2}");
}
