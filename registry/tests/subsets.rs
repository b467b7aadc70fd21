//! Subsets over HTTP: 64 clients (each known by its lease) asking for 8 of
//! a service's 32 instances get subsets that load every instance alike;
//! one instance joining brings at most one old instance into each
//! client's subset (besides, perhaps, itself); a
//! client whose lease ended stops counting.

use beacon_testkit::TestRegistry;
use beacon_wire::{LeaseGrant, ServiceChanges};
use serde_json::json;
use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

struct Clients {
    http: reqwest::Client,
    registry: TestRegistry,
    leases: Vec<String>,
}

impl Clients {
    async fn start(count: usize) -> Self {
        let registry = TestRegistry::start(None).await;
        let http = reqwest::Client::new();
        let mut leases = Vec::new();
        for _ in 0..count {
            let grant: LeaseGrant = http
                .post(registry.at("/v1/leases"))
                .json(&json!({"ttl_ms": 60_000}))
                .send()
                .await
                .expect("grant")
                .json()
                .await
                .expect("json");
            leases.push(grant.lease.to_string());
        }
        Self {
            http,
            registry,
            leases,
        }
    }

    async fn register(&self, n: usize) {
        let answer = self
            .http
            .put(
                self.registry
                    .at(&format!("/v1/services/ratings/instances/r{n:03}")),
            )
            .json(&json!({"address": format!("http://127.0.0.1:{}", 9000 + n)}))
            .send()
            .await
            .expect("register");
        assert!(answer.status().is_success());
    }

    async fn subset_of(&self, lease: &str, k: usize) -> ServiceChanges {
        let url = self.registry.at(&format!(
            "/v1/services/ratings/changes?subset={k}&client={lease}"
        ));
        let answer = self.http.get(url).send().await.expect("subset");
        assert_eq!(answer.status(), 200);
        answer.json().await.expect("json")
    }

    /// Every client's subset, once all have asked.
    async fn subsets(&self, k: usize) -> Vec<BTreeSet<String>> {
        for lease in &self.leases {
            self.subset_of(lease, k).await;
        }
        let mut all = Vec::new();
        for lease in &self.leases {
            let answer = self.subset_of(lease, k).await;
            assert!(answer.snapshot);
            let ids = answer.instances.unwrap_or_default();
            all.push(ids.iter().map(|i| i.id.to_string()).collect());
        }
        all
    }
}

#[tokio::test]
async fn sixty_four_clients_load_thirty_two_instances_alike_and_a_join_moves_little() {
    let clients = Clients::start(64).await;
    for n in 0..32 {
        clients.register(n * 2).await;
    }
    let before = clients.subsets(8).await;
    let mut coverage: BTreeMap<&String, usize> = BTreeMap::new();
    for subset in &before {
        assert_eq!(subset.len(), 8);
        for id in subset {
            *coverage.entry(id).or_default() += 1;
        }
    }
    assert_eq!(coverage.len(), 32, "every instance is in some subset");
    assert!(coverage.values().all(|&c| c == 16), "{coverage:?}");
    let answer = clients.subset_of(&clients.leases[0], 8).await;
    let size = answer.subset.expect("a subset answer");
    assert_eq!((size.size, size.of), (8, 32));

    // One instance joins between two others.
    clients.register(31).await;
    let after = clients.subsets(8).await;
    for (old, new) in before.iter().zip(&after) {
        let moved = new.difference(old).filter(|id| *id != "r031").count();
        assert!(moved <= 1, "{old:?} → {new:?}");
    }

    // A client whose lease ended no longer counts; unknown leases and bad
    // queries are refused.
    let ended = &clients.leases[63];
    let deleted = clients
        .http
        .delete(clients.registry.at(&format!("/v1/leases/{ended}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    let refused = clients
        .http
        .get(clients.registry.at(&format!(
            "/v1/services/ratings/changes?subset=8&client={ended}"
        )))
        .send()
        .await
        .expect("subset");
    assert_eq!(refused.status(), 404);
    let half = clients
        .http
        .get(clients.registry.at("/v1/services/ratings/changes?subset=8"))
        .send()
        .await
        .expect("subset");
    assert_eq!(half.status(), 400);
    let body: serde_json::Value = half.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_query");
}

/// A subset moves when the clients do: a client blocked on its subset
/// wakes when another joins (ranks shift), and the index it gets is new.
#[tokio::test]
async fn a_client_joining_wakes_the_subset_watchers() {
    let clients = Clients::start(3).await;
    for n in 0..6 {
        clients.register(n).await;
    }
    let first = clients.subset_of(&clients.leases[0], 2).await;
    let blocked = {
        let http = clients.http.clone();
        let url = clients.registry.at(&format!(
            "/v1/services/ratings/changes?subset=2&client={}&index={}&wait=20s",
            clients.leases[0], first.index
        ));
        tokio::spawn(async move {
            let answer = http.get(url).send().await.expect("blocking subset read");
            answer.json::<ServiceChanges>().await.expect("json")
        })
    };
    // Wait until the read is parked, so that the join is what wakes it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = clients
            .http
            .get(clients.registry.at("/_metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if metrics.contains("beacon_registry_parked_watchers 1") {
            break;
        }
        assert!(Instant::now() < deadline, "the subset read never parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    clients.subset_of(&clients.leases[1], 2).await;
    let woken = blocked.await.expect("the read answers");
    assert!(
        woken.index > first.index,
        "{} → {}",
        first.index,
        woken.index
    );
}
