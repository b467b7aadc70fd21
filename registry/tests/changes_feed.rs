//! The changes feed (`GET /v1/services/{service}/changes`): a watcher that
//! applies only the changes after its index ends with what the registry
//! has — under random registrations, deregistrations, lease expiries and
//! shared leases granted, kept alive, ended and run out, on
//! tokio's paused clock for ten simulated minutes — and one too far behind starts again from a
//! snapshot. Then the route itself over HTTP.

use beacon_registry::{
    metrics::Metrics,
    store::{MemoryStore, Store, StoreError},
};
use beacon_testkit::TestRegistry;
use beacon_wire::{
    Address, Instance, InstanceId, LeaseId, Registration, ServiceChanges, ServiceName,
};
use std::{sync::Arc, time::Duration};
use tokio::time::advance;

fn service() -> ServiceName {
    ServiceName::new("ratings").expect("valid service")
}

fn registration(port: u16, ttl_ms: u64) -> Registration {
    let address = Address::new(&format!("http://127.0.0.1:{port}")).expect("valid address");
    Registration {
        ttl: Duration::from_millis(ttl_ms),
        ..Registration::new(address)
    }
}

/// What a watcher compares: who is there, where, with what metadata. A
/// put carries the rest (lease length, registration time) as of the change;
/// a registration that changes neither address nor metadata is a refresh,
/// not a change, in the changes as in the list read's index.
fn comparable(instances: &[Instance]) -> Vec<(String, String, String)> {
    instances
        .iter()
        .map(|i| {
            (
                i.id.to_string(),
                i.address.to_string(),
                format!("{:?}", i.metadata),
            )
        })
        .collect()
}

/// A client of the feed: the instances it has and the index they are at.
#[derive(Debug, Default, Clone)]
struct Watcher {
    index: u64,
    instances: Vec<Instance>,
    snapshots: u32,
}

impl Watcher {
    fn apply(&mut self, answer: &ServiceChanges) {
        assert!(answer.index >= self.index, "the index went back");
        // Snapshots that catch up from a known index (not the first sync).
        self.snapshots += u32::from(answer.snapshot && self.index != 0);
        answer.apply_to(&mut self.instances);
        self.index = answer.index;
    }
}

/// A small deterministic generator (xorshift): the same run every time,
/// and a different one per seed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Brings `watcher` up to date, letting the expiry task run until what it
/// has equals what the registry lists (expired leases are hidden from the
/// list at once, and logged as deletes when the task removes them).
async fn catch_up(store: &MemoryStore, watcher: &mut Watcher) {
    for _ in 0..10_000 {
        let mut next = watcher.clone();
        next.apply(&store.catalog().changes(&service(), watcher.index));
        let listed = store.catalog().resolve(&service());
        if comparable(&next.instances) == comparable(&listed.instances) {
            assert_eq!(next.index, listed.index);
            *watcher = next;
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the watcher never caught up with the registry");
}

#[tokio::test(start_paused = true)]
async fn a_watcher_fed_only_changes_for_ten_minutes_of_churn_ends_equal_to_the_registry() {
    for seed in [1u64, 7, 42, 1234] {
        let store = MemoryStore::new(Arc::new(Metrics::new()));
        let mut dice = Dice(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        // Watchers that look after every step, now and then, and rarely.
        let mut watchers = [Watcher::default(), Watcher::default(), Watcher::default()];
        // Shared leases come and go too: granted, registered on, kept
        // alive, ended, or left to run out with their instances.
        let mut leases: Vec<LeaseId> = Vec::new();
        // Ten minutes of churn on the paused clock.
        let start = tokio::time::Instant::now();
        let mut step = 0u64;
        while start.elapsed() < Duration::from_secs(600) {
            step += 1;
            let id = InstanceId::new(&format!("ratings-{}", dice.below(16))).expect("id");
            match dice.below(14) {
                0..=4 => {
                    let port = 8000 + u16::try_from(dice.below(3)).expect("small");
                    let ttl = 1000 + dice.below(2000);
                    let mut registration = registration(port, ttl);
                    if !leases.is_empty() && dice.below(2) == 0 {
                        let at = usize::try_from(dice.below(leases.len() as u64)).expect("small");
                        registration.lease = Some(leases[at].clone());
                    }
                    match store.register(service(), id, registration).await {
                        Ok(_) | Err(StoreError::UnknownLease(_)) => {}
                        Err(e) => panic!("register: {e}"),
                    }
                }
                5..=6 => {
                    let _ = store.deregister(&service(), &id).await;
                }
                7 => {
                    let _ = store.heartbeat(&service(), &id).await;
                }
                8 => {
                    let ttl = Duration::from_millis(1000 + dice.below(2000));
                    leases.push(store.grant(ttl).await.expect("grant").lease);
                }
                9 if !leases.is_empty() => {
                    let at = usize::try_from(dice.below(leases.len() as u64)).expect("small");
                    if dice.below(3) == 0 {
                        let _ = store.revoke(&leases.swap_remove(at)).await;
                    } else {
                        let _ = store.keep_alive(&leases[at]).await;
                    }
                }
                _ => advance(Duration::from_millis(dice.below(1500))).await,
            }
            for (every, watcher) in [1, 5, 50].into_iter().zip(watchers.iter_mut()) {
                if step.is_multiple_of(every) {
                    catch_up(&store, watcher).await;
                }
            }
        }
        for watcher in &mut watchers {
            catch_up(&store, watcher).await;
            assert_eq!(watcher.snapshots, 0, "only the first sync is a snapshot");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_watcher_behind_the_kept_changes_gets_a_snapshot_and_the_present() {
    let store = MemoryStore::new(Arc::new(Metrics::new()));
    let id = InstanceId::new("ratings-1").expect("id");
    let mut watcher = Watcher::default();
    store
        .register(service(), id.clone(), registration(8000, 15_000))
        .await
        .expect("register");
    catch_up(&store, &mut watcher).await;
    // Far more changes than are kept: the address moving back and forth.
    for i in 0..3000u16 {
        store
            .register(service(), id.clone(), registration(8000 + i % 2, 15_000))
            .await
            .expect("register");
    }
    let answer = store.catalog().changes(&service(), watcher.index);
    assert!(answer.snapshot, "{} changes", answer.changes.len());
    watcher.apply(&answer);
    assert_eq!(watcher.snapshots, 1);
    assert_eq!(
        comparable(&watcher.instances),
        comparable(&store.catalog().resolve(&service()).instances)
    );
    // A watcher that is not behind gets changes only.
    store.deregister(&service(), &id).await.expect("deregister");
    let answer = store.catalog().changes(&service(), watcher.index);
    assert!(!answer.snapshot);
    assert_eq!(answer.changes.len(), 1);
}

#[tokio::test]
async fn over_http_a_blocking_changes_read_answers_with_the_one_change() {
    let registry = TestRegistry::start(None).await;
    let http = reqwest::Client::new();
    let register = |id: &'static str, port: u16| {
        let http = http.clone();
        let url = registry.at(&format!("/v1/services/ratings/instances/{id}"));
        async move {
            http.put(url)
                .json(&serde_json::json!({"address": format!("http://127.0.0.1:{port}")}))
                .send()
                .await
                .expect("register")
                .error_for_status()
                .expect("registered");
        }
    };
    // No index is a first sync: a snapshot at once, even of a service
    // nobody registered yet.
    let snapshot_of = |service: &str| {
        let request = http.get(registry.at(&format!("/v1/services/{service}/changes")));
        async move {
            let answer = request.send().await.expect("changes");
            answer.json::<ServiceChanges>().await.expect("json")
        }
    };
    let started = std::time::Instant::now();
    let empty = snapshot_of("nobody").await;
    assert!(started.elapsed() < Duration::from_secs(10), "it waited");
    assert!(empty.snapshot && empty.instances == Some(vec![]) && empty.index == 0);
    register("ratings-1", 8001).await;
    let first = snapshot_of("ratings").await;
    assert!(first.snapshot);
    assert_eq!(first.instances.as_ref().map(Vec::len), Some(1));

    let url = registry.at(&format!(
        "/v1/services/ratings/changes?index={}&wait=10s",
        first.index
    ));
    let waiting = tokio::spawn(http.get(url).send());
    register("ratings-2", 8002).await;
    let answer = waiting.await.expect("task").expect("answered");
    let header: u64 = answer.headers()["x-beacon-index"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("index");
    let next: ServiceChanges = answer.json().await.expect("json");
    assert_eq!(header, next.index);
    assert!(!next.snapshot && next.instances.is_none());
    assert_eq!(next.changes.len(), 1);
    assert_eq!(next.changes[0].id.as_str(), "ratings-2");

    let bad = http
        .get(registry.at("/v1/services/ratings/changes?index=soon"))
        .send()
        .await
        .expect("answered");
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_query");
}
