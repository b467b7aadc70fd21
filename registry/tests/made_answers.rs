//! Answers made once: a list read's JSON is made once per index and served
//! to every reader from it — but never once the index moved, never for
//! more than a second (its `expires_in_ms` counts down), and never past the
//! moment its first lease could run out. On tokio's paused clock.

use beacon_registry::{
    metrics::Metrics,
    store::{MemoryStore, Store},
};
use beacon_wire::{Address, InstanceId, Registration, ServiceInstances, ServiceName};
use std::{sync::Arc, time::Duration};
use tokio::time::advance;

fn service() -> ServiceName {
    ServiceName::new("ratings").expect("valid service")
}

async fn register(store: &MemoryStore, n: u16, ttl_ms: u64) {
    let address = Address::new(&format!("http://127.0.0.1:{}", 8000 + n)).expect("address");
    let registration = Registration {
        ttl: Duration::from_millis(ttl_ms),
        ..Registration::new(address)
    };
    let id = InstanceId::new(&format!("ratings-{n}")).expect("id");
    store
        .register(service(), id, registration)
        .await
        .expect("register");
}

fn read(store: &MemoryStore) -> ServiceInstances {
    let (index, json) = store.catalog().resolve_json(&service());
    let answer: ServiceInstances = serde_json::from_slice(&json).expect("the answer is JSON");
    assert_eq!(answer.index, index);
    answer
}

#[tokio::test(start_paused = true)]
async fn a_list_read_is_made_once_per_index_and_never_served_stale() {
    let metrics = Arc::new(Metrics::new());
    let store = MemoryStore::new(Arc::clone(&metrics));
    for n in 0..3 {
        register(&store, n, 15_000).await;
    }
    // A hundred readers of one index: made once, reused 99 times, each
    // answer what resolve() gives.
    let first = read(&store);
    for _ in 0..99 {
        assert_eq!(read(&store), first);
    }
    assert_eq!(metrics.answers_reused.get(), 99);
    assert_eq!(first, store.catalog().resolve(&service()));

    // A change: the next read is made anew and shows it.
    register(&store, 3, 15_000).await;
    let changed = read(&store);
    assert!(changed.index > first.index);
    assert_eq!(changed.instances.len(), 4);
    assert_eq!(metrics.answers_reused.get(), 99);

    // Time: a made answer is at most a second old.
    advance(Duration::from_millis(999)).await;
    assert_eq!(read(&store), changed);
    advance(Duration::from_millis(1)).await;
    let later = read(&store);
    assert_eq!(later.index, changed.index);
    assert_eq!(later.instances[0].expires_in_ms, 14_000);
    assert_eq!(later, store.catalog().resolve(&service()));
}

#[tokio::test(start_paused = true)]
async fn a_made_answer_is_not_served_past_its_first_lease_s_end() {
    let metrics = Arc::new(Metrics::new());
    let store = MemoryStore::new(Arc::clone(&metrics));
    register(&store, 0, 15_000).await;
    register(&store, 1, 1_000).await;
    // Made at 500 ms, when a second's reuse would reach past 1 s.
    advance(Duration::from_millis(500)).await;
    let made = read(&store);
    assert_eq!(made.instances.len(), 2);
    // ratings-1's lease runs out at 1 s: from then on no read lists it.
    advance(Duration::from_millis(500)).await;
    let after = read(&store);
    assert_eq!(after.instances.len(), 1, "{after:?}");
    assert_eq!(
        after.instances,
        store.catalog().resolve(&service()).instances
    );
}
