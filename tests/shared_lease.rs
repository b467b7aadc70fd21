//! The library's `SharedLease` against a real registry: one keepalive for
//! a process's many registrations, the lease granted anew (and everyone on
//! it registered again) after the registry restarts, an instance removed
//! behind the process's back put back, and all of them gone at once when
//! the lease ends.

mod support;

use beacon::{
    wire::{Address, Registration, ServiceInstances},
    LeaseStatus, RegistryClient, SharedLease,
};
use std::time::Duration;
use support::{eventually, TestRegistry};

const PATIENCE: Duration = Duration::from_secs(15);

async fn listed(registry: &str, service: &str) -> ServiceInstances {
    reqwest::get(format!("{registry}/v1/services/{service}"))
        .await
        .expect("resolve")
        .json()
        .await
        .expect("json")
}

async fn metric(registry: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{registry}/_metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_keepalive_keeps_a_process_s_instances_and_ending_it_removes_them_at_once() {
    let registry = TestRegistry::start(None).await;
    let client = RegistryClient::from_list(&registry.url, None).expect("client");
    let shared = SharedLease::start(client, Duration::from_millis(1500));
    let mut leases = Vec::new();
    for i in 0..60u16 {
        let service = if i % 3 == 0 { "search" } else { "ratings" };
        let address = Address::new(&format!("http://127.0.0.1:{}", 9000 + i)).expect("address");
        let id = format!("{service}-{i}").parse().expect("id");
        leases.push(shared.register(
            service.parse().expect("name"),
            id,
            Registration::new(address),
        ));
    }
    for lease in &leases {
        lease.registered_within(PATIENCE).await.expect("registered");
    }
    let lease_id = shared.id().expect("granted");
    let ratings = listed(&registry.url, "ratings").await;
    assert_eq!(ratings.instances.len(), 40);
    assert!(ratings
        .instances
        .iter()
        .all(|i| i.lease.as_ref() == Some(&lease_id)));

    // Three TTLs later all are still there, kept by keepalives alone.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(listed(&registry.url, "ratings").await.instances.len(), 40);
    assert_eq!(listed(&registry.url, "search").await.instances.len(), 20);
    let keepalives = metric(&registry.url, "beacon_registry_keepalives_total").await;
    let heartbeats = metric(&registry.url, "beacon_registry_heartbeats_total").await;
    assert!(keepalives >= 6.0, "{keepalives} keepalives");
    assert_eq!(heartbeats, 0.0, "no instance renewed on its own");

    // One removed behind the process's back comes back at the next keepalive.
    reqwest::Client::new()
        .delete(registry.at("/v1/services/ratings/instances/ratings-1"))
        .send()
        .await
        .expect("deregister")
        .error_for_status()
        .expect("deregistered");
    eventually(PATIENCE, "ratings-1 to be registered again", || async {
        let back = listed(&registry.url, "ratings").await;
        (back.instances.len() == 40).then_some(())
    })
    .await;

    // One leaves alone.
    let leaving = leases.pop().expect("one");
    leaving.shutdown().await.expect("deregistered");
    assert_eq!(listed(&registry.url, "ratings").await.instances.len(), 39);

    // The lease ends: the rest go at once, in one change per service.
    let before = listed(&registry.url, "ratings").await.index;
    shared.shutdown().await.expect("lease ended");
    let after = listed(&registry.url, "ratings").await;
    assert!(after.instances.is_empty());
    let changes: beacon::wire::ServiceChanges = reqwest::get(registry.at(&format!(
        "/v1/services/ratings/changes?index={before}&wait=0s"
    )))
    .await
    .expect("changes")
    .json()
    .await
    .expect("json");
    assert_eq!(changes.changes.len(), 39);
    assert_eq!(changes.index, after.index);
    drop(leases);
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_registry_gets_a_new_lease_and_every_instance_back() {
    let registry = TestRegistry::start(None).await;
    let addr = registry.addr().to_owned();
    let url = registry.url.clone();
    let client = RegistryClient::from_list(&url, None).expect("client");
    let shared = SharedLease::start(client, Duration::from_millis(1500));
    let leases: Vec<_> = (0..10u16)
        .map(|i| {
            let address = Address::new(&format!("http://127.0.0.1:{}", 9100 + i)).expect("address");
            let id = format!("ratings-{i}").parse().expect("id");
            shared.register(
                "ratings".parse().expect("name"),
                id,
                Registration::new(address),
            )
        })
        .collect();
    for lease in &leases {
        lease.registered_within(PATIENCE).await.expect("registered");
    }
    let first = shared.id().expect("granted");
    registry.stop().await;
    eventually(
        PATIENCE,
        "the lease to say the registry is away",
        || async { matches!(shared.status(), LeaseStatus::Retrying(_)).then_some(()) },
    )
    .await;
    let registry = TestRegistry::start_at(&addr, None).await;
    eventually(PATIENCE, "every instance back on a new lease", || async {
        let back = listed(&url, "ratings").await;
        let second = shared.id()?;
        (second != first
            && back.instances.len() == 10
            && back
                .instances
                .iter()
                .all(|i| i.lease.as_ref() == Some(&second)))
        .then_some(())
    })
    .await;
    for lease in &leases {
        assert_eq!(lease.status(), LeaseStatus::Registered);
    }
    shared.shutdown().await.expect("ended");
    registry.stop().await;
}
