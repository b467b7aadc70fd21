//! Lease expiry and blocking queries under tokio's paused clock: every
//! timing claim is exact here, with no real sleeping.

mod support;

use beacon_registry::{
    metrics::Metrics,
    store::{MemoryStore, Registered, Store, StoreError},
};
use beacon_wire::{Address, InstanceId, Registration, ServiceInstances, ServiceName};
use std::{sync::Arc, time::Duration};
use support::until;
use tokio::time::{advance, sleep, Instant};
use tokio_util::sync::CancellationToken;

fn service(name: &str) -> ServiceName {
    ServiceName::new(name).expect("valid service")
}

fn id(name: &str) -> InstanceId {
    InstanceId::new(name).expect("valid id")
}

fn registration(port: u16, ttl_ms: u64) -> Registration {
    let address = Address::new(&format!("http://127.0.0.1:{port}")).expect("valid address");
    Registration {
        ttl: Duration::from_millis(ttl_ms),
        ..Registration::new(address)
    }
}

fn store() -> (MemoryStore, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    (MemoryStore::new(Arc::clone(&metrics)), metrics)
}

fn ids(answer: &ServiceInstances) -> Vec<String> {
    answer.instances.iter().map(|i| i.id.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_lease_ends_exactly_at_its_ttl() {
    let (store, metrics) = store();
    let ratings = service("ratings");
    store
        .register(ratings.clone(), id("r1"), registration(8001, 1000))
        .await
        .expect("register");
    // A probe elsewhere, due 1 ms earlier: once the expiry task has removed
    // it, that task's pass at 999 ms is over, and r1 had its chance to be
    // (wrongly) expired early.
    let probe = service("probe");
    store
        .register(probe.clone(), id("p"), registration(9001, 999))
        .await
        .expect("register");

    advance(Duration::from_millis(999)).await;
    until("the probe to expire at 999 ms", || {
        metrics.expirations.get() >= 1
    })
    .await;
    assert_eq!(metrics.expirations.get(), 1, "only the probe is due");
    assert!(store.catalog().resolve(&probe).instances.is_empty());
    assert_eq!(ids(&store.catalog().resolve(&ratings)), ["r1"]);
    assert_eq!(
        store.catalog().resolve(&ratings).instances[0].expires_in_ms,
        1
    );
    assert_eq!(store.pending_deadlines(), 1, "r1 is still to be checked");

    advance(Duration::from_millis(1)).await;
    assert!(store.catalog().resolve(&ratings).instances.is_empty());
    // At 1000 ms exactly: `until` fails if the clock moved.
    until("r1 to expire at 1000 ms", || metrics.expirations.get() >= 2).await;
    assert_eq!(metrics.expirations.get(), 2);
    assert_eq!(store.pending_deadlines(), 0, "nothing left to check");
}

#[tokio::test(start_paused = true)]
async fn heartbeats_extend_the_lease_and_a_late_one_is_refused() {
    let (store, metrics) = store();
    let ratings = service("ratings");
    store
        .register(ratings.clone(), id("r1"), registration(8001, 1000))
        .await
        .expect("register");
    for _ in 0..5 {
        // Sleeping (not `advance`) on the paused clock: tokio only moves the
        // clock on when every task is idle, so the expiry task has made each
        // of its passes (at 1000, 1600, ... ms; never at a heartbeat's
        // instant) and requeued the renewed lease before this returns.
        sleep(Duration::from_millis(600)).await;
        let renewed = store.heartbeat(&ratings, &id("r1")).await.expect("alive");
        assert_eq!(renewed.expires_in_ms, 1000);
    }
    // Each heartbeat renews a lease that would otherwise have ended; the
    // instance outlived its TTL three times over.
    assert_eq!(ids(&store.catalog().resolve(&ratings)), ["r1"]);
    assert_eq!(metrics.expirations.get(), 0, "renewed, never expired");
    assert_eq!(store.pending_deadlines(), 1, "requeued at its new deadline");

    advance(Duration::from_millis(1000)).await;
    let late = store.heartbeat(&ratings, &id("r1")).await;
    assert!(
        matches!(late, Err(StoreError::UnknownInstance { .. })),
        "{late:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn re_registering_after_expiry_is_a_new_registration() {
    let (store, _) = store();
    let ratings = service("ratings");
    let first = store
        .register(ratings.clone(), id("r1"), registration(8001, 1000))
        .await
        .expect("register");
    assert!(matches!(first, Registered::Created(_)));
    let again = store
        .register(ratings.clone(), id("r1"), registration(8001, 1000))
        .await
        .expect("register");
    assert!(
        matches!(again, Registered::Replaced(_)),
        "live lease is replaced"
    );

    advance(Duration::from_millis(1000)).await;
    let back = store
        .register(ratings.clone(), id("r1"), registration(8001, 1000))
        .await
        .expect("register");
    assert!(
        matches!(back, Registered::Created(_)),
        "expired lease starts anew"
    );
}

#[tokio::test(start_paused = true)]
async fn a_change_wakes_every_parked_watcher_at_once() {
    let (store, metrics) = store();
    let store = Arc::new(store);
    let ratings = service("ratings");
    let start = store.catalog().resolve(&ratings).index;
    let cancel = CancellationToken::new();
    let watchers: Vec<_> = (0..1000)
        .map(|_| {
            let (store, ratings, cancel) = (Arc::clone(&store), ratings.clone(), cancel.clone());
            tokio::spawn(async move {
                let answer = store
                    .catalog()
                    .wait_for_change(&ratings, start, Duration::from_secs(30), &cancel)
                    .await;
                (answer, Instant::now())
            })
        })
        .collect();
    until("every watcher to park", || {
        metrics_gauge(&metrics, "parked_watchers") == 1000
    })
    .await;

    advance(Duration::from_secs(5)).await;
    let changed_at = Instant::now();
    store
        .register(ratings.clone(), id("r1"), registration(8001, 15_000))
        .await
        .expect("register");
    for watcher in watchers {
        let (answer, woke_at) = watcher.await.expect("watcher finished");
        assert_eq!(ids(&answer), ["r1"]);
        assert!(answer.index > start);
        assert_eq!(woke_at, changed_at, "woken by the change, not the timeout");
    }
    assert_eq!(metrics_gauge(&metrics, "parked_watchers"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_that_changes_nothing_wakes_nobody() {
    let (store, _) = store();
    let store = Arc::new(store);
    let ratings = service("ratings");
    store
        .register(ratings.clone(), id("r1"), registration(8001, 5_000))
        .await
        .expect("register");
    let index = store.catalog().resolve(&ratings).index;
    let watcher = {
        let (store, ratings) = (Arc::clone(&store), ratings.clone());
        tokio::spawn(async move {
            let answer = store
                .catalog()
                .wait_for_change(
                    &ratings,
                    index,
                    Duration::from_secs(3),
                    &CancellationToken::new(),
                )
                .await;
            (answer, Instant::now())
        })
    };
    let started = Instant::now();
    for _ in 0..5 {
        sleep(Duration::from_millis(500)).await;
        store.heartbeat(&ratings, &id("r1")).await.expect("alive");
        // Re-registering with identical content is a refresh, not a change.
        store
            .register(ratings.clone(), id("r1"), registration(8001, 5_000))
            .await
            .expect("refresh");
    }
    let (answer, returned_at) = watcher.await.expect("watcher finished");
    assert_eq!(answer.index, index, "no change was made");
    assert_eq!(
        returned_at - started,
        Duration::from_secs(3),
        "only the wait ended it"
    );
}

#[tokio::test(start_paused = true)]
async fn metadata_or_address_changes_do_wake_watchers() {
    let (store, _) = store();
    let ratings = service("ratings");
    store
        .register(ratings.clone(), id("r1"), registration(8001, 5_000))
        .await
        .expect("register");
    let before = store.catalog().resolve(&ratings).index;
    store
        .register(ratings.clone(), id("r1"), registration(8002, 5_000))
        .await
        .expect("move");
    let moved = store.catalog().resolve(&ratings).index;
    assert!(moved > before);
    let mut relabelled = registration(8002, 5_000);
    relabelled.metadata.insert("zone".into(), "b".into());
    store
        .register(ratings.clone(), id("r1"), relabelled)
        .await
        .expect("relabel");
    assert!(store.catalog().resolve(&ratings).index > moved);
}

#[tokio::test(start_paused = true)]
async fn expiry_wakes_watchers_at_the_deadline() {
    let (store, _) = store();
    let store = Arc::new(store);
    let ratings = service("ratings");
    store
        .register(ratings.clone(), id("r1"), registration(8001, 2_000))
        .await
        .expect("register");
    let registered_at = Instant::now();
    let index = store.catalog().resolve(&ratings).index;
    let answer = store
        .catalog()
        .wait_for_change(
            &ratings,
            index,
            Duration::from_secs(30),
            &CancellationToken::new(),
        )
        .await;
    assert!(answer.instances.is_empty());
    assert_eq!(registered_at.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_hundred_thousand_leases_expire_on_time() {
    let (store, metrics) = store();
    let store = Arc::new(store);
    let bulk = service("bulk");
    // Stagger deadlines over 10 s, with one probe instance in the middle.
    for n in 0..100_000u32 {
        let ttl = 1_000 + u64::from(n % 10_000);
        store
            .register(bulk.clone(), id(&format!("i{n}")), registration(9000, ttl))
            .await
            .expect("register");
    }
    let probe = service("probe");
    store
        .register(probe.clone(), id("p"), registration(9001, 5_500))
        .await
        .expect("register");
    let registered_at = Instant::now();
    let index = store.catalog().resolve(&probe).index;
    let answer = store
        .catalog()
        .wait_for_change(
            &probe,
            index,
            Duration::from_secs(30),
            &CancellationToken::new(),
        )
        .await;
    assert!(answer.instances.is_empty());
    assert_eq!(registered_at.elapsed(), Duration::from_millis(5_500));

    // The last ten leases (TTL 10 999 ms) end at 10.999 s; at 10.998 s every
    // other lease (and the probe) has been expired by the expiry task.
    sleep(Duration::from_millis(5_498)).await;
    until("all but the last ten to expire by 10.998 s", || {
        metrics.expirations.get() >= 100_001 - 10
    })
    .await;
    assert_eq!(
        metrics.expirations.get(),
        100_001 - 10,
        "the last ten are not due"
    );
    assert_eq!(store.catalog().counts(), (1, 10));
    assert_eq!(store.pending_deadlines(), 10);
    sleep(Duration::from_millis(1)).await;
    assert_eq!(store.catalog().counts(), (0, 0));
    until("the last ten to expire at 10.999 s", || {
        metrics.expirations.get() >= 100_001
    })
    .await;
    assert_eq!(metrics.expirations.get(), 100_001);
    assert_eq!(store.pending_deadlines(), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_parked_watchers() {
    let (store, _) = store();
    let ratings = service("ratings");
    let cancel = CancellationToken::new();
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            sleep(Duration::from_millis(100)).await;
            cancel.cancel();
        })
    };
    let started = Instant::now();
    let answer = store
        .catalog()
        .wait_for_change(&ratings, 0, Duration::from_secs(60), &cancel)
        .await;
    assert_eq!(answer.index, 0);
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    canceller.await.expect("canceller");
}

#[tokio::test(start_paused = true)]
async fn idle_services_are_forgotten_but_indexes_never_go_back() {
    let (store, _) = store();
    let ghost = service("ghost");
    // Blocking reads of names nobody registers leave nothing behind.
    store
        .catalog()
        .wait_for_change(
            &ghost,
            0,
            Duration::from_millis(10),
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(store.catalog().counts(), (0, 0));
    assert_eq!(store.catalog().list().services.len(), 0);

    store
        .register(ghost.clone(), id("g1"), registration(8001, 1_000))
        .await
        .expect("register");
    let first = store.catalog().resolve(&ghost).index;
    store
        .deregister(&ghost, &id("g1"))
        .await
        .expect("deregister");
    let emptied = store.catalog().resolve(&ghost).index;
    assert!(emptied > first, "an emptied service keeps a rising index");
    store
        .register(ghost.clone(), id("g1"), registration(8001, 1_000))
        .await
        .expect("register");
    assert!(store.catalog().resolve(&ghost).index > emptied);
}

/// Reads one unlabelled gauge or counter from the exposition text.
fn metrics_gauge(metrics: &Metrics, name: &str) -> i64 {
    let text = metrics.render();
    let line = format!("beacon_registry_{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}
