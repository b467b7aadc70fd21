//! Shared leases: one keepalive renews every instance on a lease, and a
//! lease that ends takes all of its instances with it in one change. First
//! under tokio's paused clock (exact timing), then over HTTP.

mod support;

use beacon_registry::{
    metrics::Metrics,
    store::{MemoryStore, Store, StoreError},
};
use beacon_testkit::TestRegistry;
use beacon_wire::{
    Address, ChangeOp, InstanceId, LeaseGrant, LeaseStatus, Registration, ServiceName,
};
use serde_json::json;
use std::{sync::Arc, time::Duration};
use support::until;
use tokio::time::advance;

fn service(name: &str) -> ServiceName {
    ServiceName::new(name).expect("valid service")
}

fn on_lease(port: u16, lease: &LeaseGrant) -> Registration {
    let address = Address::new(&format!("http://127.0.0.1:{port}")).expect("valid address");
    Registration {
        lease: Some(lease.lease.clone()),
        ..Registration::new(address)
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_of_a_thousand_instances_lives_by_its_keepalives_and_ends_at_once() {
    let store = MemoryStore::new(Arc::new(Metrics::new()));
    let lease = store.grant(Duration::from_secs(3)).await.expect("grant");
    assert_eq!(lease.ttl_ms, 3000);
    // 1,000 instances over two services, one lease.
    for i in 0..1000u16 {
        let name = if i % 2 == 0 { "ratings" } else { "search" };
        let id = InstanceId::new(&format!("{name}-{i}")).expect("id");
        store
            .register(service(name), id, on_lease(10_000 + i, &lease))
            .await
            .expect("register on the lease");
    }
    let listed = store.catalog().resolve(&service("ratings"));
    assert_eq!(listed.instances.len(), 500);
    assert!(listed
        .instances
        .iter()
        .all(|i| i.lease.as_ref() == Some(&lease.lease) && i.ttl_ms == 3000));

    // Ten TTLs of keepalives: one call a second keeps all 1,000.
    for _ in 0..30 {
        advance(Duration::from_secs(1)).await;
        let status = store.keep_alive(&lease.lease).await.expect("keepalive");
        assert_eq!(status.instances, 1000);
    }
    assert_eq!(store.catalog().counts(), (2, 1000));

    // Keepalives stop: everything goes at the lease's end, in one change
    // per service.
    let before = [
        store.catalog().index(&service("ratings")),
        store.catalog().index(&service("search")),
    ];
    advance(Duration::from_millis(2999)).await;
    assert_eq!(
        store.catalog().counts(),
        (2, 1000),
        "still live 1 ms before"
    );
    advance(Duration::from_millis(1)).await;
    assert_eq!(
        store.catalog().counts(),
        (0, 0),
        "gone for readers at the deadline"
    );
    until("the lease to be ended", || {
        store.catalog().index(&service("search")) > before[1]
    })
    .await;
    for (name, index) in [("ratings", before[0]), ("search", before[1])] {
        let answer = store.catalog().changes(&service(name), index);
        assert!(!answer.snapshot);
        assert_eq!(answer.changes.len(), 500);
        assert!(answer.changes.iter().all(|c| c.op == ChangeOp::Delete));
        // One wake: everything after `index` came with one new index.
        let after_one = store.catalog().changes(&service(name), answer.index);
        assert!(after_one.changes.is_empty());
    }
    assert!(matches!(
        store.keep_alive(&lease.lease).await,
        Err(StoreError::UnknownLease(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn leaving_a_lease_and_heartbeats_on_one() {
    let store = MemoryStore::new(Arc::new(Metrics::new()));
    let lease = store.grant(Duration::from_secs(2)).await.expect("grant");
    let (a, b) = (
        InstanceId::new("ratings-a").expect("id"),
        InstanceId::new("ratings-b").expect("id"),
    );
    for id in [&a, &b] {
        store
            .register(service("ratings"), id.clone(), on_lease(9000, &lease))
            .await
            .expect("register");
    }
    // A heartbeat of one instance on the lease renews the lease.
    advance(Duration::from_millis(1500)).await;
    let renewed = store
        .heartbeat(&service("ratings"), &a)
        .await
        .expect("beat");
    assert_eq!(renewed.expires_in_ms, 2000);
    // b leaves the lease for one of its own.
    let own = Registration::new(Address::new("http://127.0.0.1:9000").expect("address"));
    store
        .register(service("ratings"), b.clone(), own)
        .await
        .expect("re-register");
    assert_eq!(
        store
            .keep_alive(&lease.lease)
            .await
            .expect("keepalive")
            .instances,
        1
    );
    store.revoke(&lease.lease).await.expect("revoke");
    let left: Vec<String> = store
        .catalog()
        .resolve(&service("ratings"))
        .instances
        .iter()
        .map(|i| i.id.to_string())
        .collect();
    assert_eq!(left, ["ratings-b"], "only the lease's instances went");
    assert!(matches!(
        store
            .register(service("ratings"), a, on_lease(9000, &lease))
            .await,
        Err(StoreError::UnknownLease(_))
    ));
}

#[tokio::test]
async fn over_http_grant_register_keepalive_and_delete() {
    let registry = TestRegistry::start(None).await;
    let http = reqwest::Client::new();
    let granted = http
        .post(registry.at("/v1/leases"))
        .json(&json!({"ttl_ms": 5000}))
        .send()
        .await
        .expect("grant");
    assert_eq!(granted.status(), 201);
    let lease: LeaseGrant = granted.json().await.expect("json");
    assert_eq!(lease.ttl_ms, 5000);
    for i in 0..3 {
        let answer = http
            .put(registry.at(&format!("/v1/services/ratings/instances/ratings-{i}")))
            .json(
                &json!({"address": format!("http://127.0.0.1:{}", 8000 + i), "lease": lease.lease}),
            )
            .send()
            .await
            .expect("register");
        assert_eq!(answer.status(), 201);
    }
    let keepalive = registry.at(&format!("/v1/leases/{}/keepalive", lease.lease));
    let status: LeaseStatus = http
        .put(&keepalive)
        .send()
        .await
        .expect("keepalive")
        .json()
        .await
        .expect("json");
    assert_eq!((status.ttl_ms, status.instances), (5000, 3));

    let code = |answer: reqwest::Response| async move {
        let status = answer.status().as_u16();
        let body: serde_json::Value = answer.json().await.expect("json error");
        (
            status,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
        )
    };
    let both = http
        .put(registry.at("/v1/services/ratings/instances/ratings-9"))
        .json(&json!({"address": "http://127.0.0.1:8009", "lease": lease.lease, "ttl_ms": 5000}))
        .send()
        .await
        .expect("register");
    assert_eq!(code(both).await, (400, "invalid_registration".into()));
    let unknown = http
        .put(registry.at("/v1/services/ratings/instances/ratings-9"))
        .json(&json!({"address": "http://127.0.0.1:8009", "lease": "0000000000000000"}))
        .send()
        .await
        .expect("register");
    assert_eq!(code(unknown).await, (404, "unknown_lease".into()));
    let short = http
        .post(registry.at("/v1/leases"))
        .json(&json!({"ttl_ms": 10}))
        .send()
        .await
        .expect("grant");
    assert_eq!(code(short).await, (400, "invalid_ttl".into()));
    let bad_id = http
        .put(registry.at("/v1/leases/Not-A-Lease/keepalive"))
        .send()
        .await
        .expect("keepalive");
    assert_eq!(code(bad_id).await, (400, "invalid_name".into()));

    let delete = registry.at(&format!("/v1/leases/{}", lease.lease));
    let ended = http.delete(&delete).send().await.expect("delete");
    assert_eq!(ended.status(), 204);
    let listed: serde_json::Value = http
        .get(registry.at("/v1/services/ratings"))
        .send()
        .await
        .expect("resolve")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["instances"], json!([]), "all three went with it");
    let again = http.delete(&delete).send().await.expect("delete");
    assert_eq!(code(again).await, (404, "unknown_lease".into()));
    let late = http.put(&keepalive).send().await.expect("keepalive");
    assert_eq!(code(late).await, (404, "unknown_lease".into()));
}
