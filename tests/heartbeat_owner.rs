//! A heartbeat renews only the registration it belongs to: when someone
//! else registers an instance's id at another address (a takeover), the
//! real instance's next heartbeat is told it was replaced (404), and its
//! `Lease` registers its own address again — where before its heartbeats
//! kept the impostor alive. A real registry on 127.0.0.1:0.

mod support;

use beacon::{
    wire::{Address, HeartbeatQuery, Registration, ServiceInstances},
    Lease, RegistryClient,
};
use std::time::Duration;
use support::{eventually, TestRegistry};

const PATIENCE: Duration = Duration::from_secs(15);

async fn address_listed(registry: &str) -> Option<String> {
    let listed: ServiceInstances = reqwest::get(format!("{registry}/v1/services/ratings"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    listed
        .instances
        .first()
        .map(|i| i.address.as_str().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_registration_is_not_renewed_by_the_old_owner_and_is_taken_back() {
    let registry = TestRegistry::start(None).await;
    let client = RegistryClient::from_list(&registry.url, None).expect("client");
    let (service, id) = (
        "ratings".parse().expect("name"),
        "ratings-1".parse().expect("id"),
    );
    let real = "http://127.0.0.1:8001";
    let rogue = "http://127.0.0.1:6666";

    // By hand first: the registration's own registered_at renews it; after
    // a takeover it no longer does, while a heartbeat naming none still does.
    let mut mine = Registration::new(Address::new(real).expect("address"));
    mine.ttl = Duration::from_secs(30);
    let first = client
        .register(&service, &id, &mine)
        .await
        .expect("register");
    let which = HeartbeatQuery {
        registered_at: Some(first.registered_at),
    };
    client
        .renew(&service, &id, which)
        .await
        .expect("renews its own");
    let theirs = Registration::new(Address::new(rogue).expect("address"));
    let taken = client
        .register(&service, &id, &theirs)
        .await
        .expect("takeover");
    assert_ne!(taken.registered_at, first.registered_at);
    let refused = client
        .renew(&service, &id, which)
        .await
        .expect_err("not its registration");
    assert!(refused.is_unknown_instance(), "{refused}");
    client
        .heartbeat(&service, &id)
        .await
        .expect("an old client's heartbeat still renews");
    let bad = reqwest::Client::new()
        .put(format!(
            "{}/v1/services/ratings/instances/ratings-1/heartbeat?registered_at=soon",
            registry.url
        ))
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_query", "{body}");

    // The library: a Lease whose id is taken over takes it back within a
    // heartbeat, instead of keeping the rogue's address alive.
    client.deregister(&service, &id).await.expect("clean slate");
    let mut kept = Registration::new(Address::new(real).expect("address"));
    kept.ttl = Duration::from_secs(3);
    let lease = Lease::start(client.clone(), service.clone(), id.clone(), kept);
    lease.registered_within(PATIENCE).await.expect("registered");
    let mut long = Registration::new(Address::new(rogue).expect("address"));
    long.ttl = Duration::from_secs(60);
    client
        .register(&service, &id, &long)
        .await
        .expect("takeover");
    assert_eq!(address_listed(&registry.url).await.as_deref(), Some(rogue));
    eventually(PATIENCE, "the real address listed again", || async {
        (address_listed(&registry.url).await.as_deref() == Some(real)).then_some(())
    })
    .await;
    drop(lease);
}
