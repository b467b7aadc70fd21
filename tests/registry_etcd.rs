//! Registry replicas sharing one 3-member etcd cluster: one view from any
//! replica, heartbeats through any replica, and the faults a deployment
//! meets — an etcd member lost, a replica lost, all of etcd lost and back.

mod support;

use beacon::{
    wire::{Address, Registration, ServiceInstances},
    ClientConfig, EventKind, Lease, RegistryClient, RegistryClientConfig, Resolver, ResolverConfig,
    ServiceClient,
};
use beacon_registry::{server::Backend, store::etcd::EtcdClient};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{
    backend::Backend as HttpBackend,
    etcd::{fresh_prefix, EtcdCluster},
    eventually, get_text, TestRegistry,
};

const PATIENCE: Duration = Duration::from_secs(15);

/// How soon a change must wake a watcher parked with `wait=30s`: generous
/// for a loaded machine, and still far from the wait, so a watcher that
/// only returned when its wait ran out fails.
const WAKE_BOUND: Duration = Duration::from_secs(10);

async fn replica(cluster: &EtcdCluster, prefix: &str) -> TestRegistry {
    let backend = Backend::Etcd {
        urls: cluster.urls(),
        prefix: prefix.to_owned(),
    };
    TestRegistry::start_with("127.0.0.1:0", backend, None).await
}

async fn register(registry: &TestRegistry, id: &str, ttl_ms: u64) -> StatusCode {
    register_status(registry, "ratings", id, ttl_ms).await
}

async fn register_status(
    registry: &TestRegistry,
    service: &str,
    id: &str,
    ttl_ms: u64,
) -> StatusCode {
    reqwest::Client::new()
        .put(registry.at(&format!("/v1/services/{service}/instances/{id}")))
        .json(&json!({"address": "http://127.0.0.1:8001", "ttl_ms": ttl_ms}))
        .send()
        .await
        .expect("request")
        .status()
}

async fn listed(registry: &TestRegistry) -> ServiceInstances {
    listing_of(registry, "ratings").await
}

/// A counter of `registry`'s metrics (`beacon_registry_{name}_total`).
async fn counter(registry: &TestRegistry, name: &str) -> u64 {
    let text = reqwest::get(registry.at("/_metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let prefix = format!("beacon_registry_{name}_total ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} counter in\n{text}"))
}

fn ids(answer: &ServiceInstances) -> Vec<String> {
    answer.instances.iter().map(|i| i.id.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_view_and_either_takes_heartbeats() {
    let cluster = EtcdCluster::start(3).await;
    let prefix = fresh_prefix();
    let (one, two) = (
        replica(&cluster, &prefix).await,
        replica(&cluster, &prefix).await,
    );

    // A watcher parked on replica 2 wakes when replica 1 takes a registration.
    let index = listed(&two).await.index;
    let watch_url = two.at(&format!("/v1/services/ratings?index={index}&wait=30s"));
    let watcher = tokio::spawn(async move {
        let answer: ServiceInstances = reqwest::get(watch_url)
            .await
            .expect("watch")
            .json()
            .await
            .expect("json");
        (answer, Instant::now())
    });
    eventually(PATIENCE, "the watcher to park on replica 2", || async {
        let metrics = get_text(two.at("/_metrics")).await?;
        metrics
            .contains("beacon_registry_parked_watchers 1\n")
            .then_some(())
    })
    .await;
    assert_eq!(register(&one, "r1", 2_000).await, StatusCode::CREATED);
    let registered = Instant::now();
    let (answer, woke) = tokio::time::timeout(WAKE_BOUND, watcher)
        .await
        .unwrap_or_else(|_| {
            panic!("the watcher was not woken within {WAKE_BOUND:?} of the registration")
        })
        .expect("watcher");
    assert_eq!(ids(&answer), ["r1"]);
    assert!(answer.index > index, "woken by a change");
    let lag = woke.saturating_duration_since(registered);
    assert!(
        lag < WAKE_BOUND,
        "woken {lag:?} after the registration: by the 30 s wait, not the change"
    );
    assert_eq!(
        listed(&one).await.index,
        answer.index,
        "replicas agree on the index"
    );

    // Heartbeats through replica 2 keep it alive past its 2 s TTL, on both.
    let http = reqwest::Client::new();
    let beat = two.at("/v1/services/ratings/instances/r1/heartbeat");
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await; // the heartbeat cadence
        let status = http.put(&beat).send().await.expect("heartbeat").status();
        assert_eq!(status, StatusCode::OK);
    }
    // No more heartbeats: gone from both once the TTL has passed. Both
    // replicas count the lease down from the last heartbeat's 2 s TTL (not
    // from the etcd lease, a few seconds longer), and hide it from reads once
    // that reaches zero; the wall-clock bound below only has to be generous.
    for registry in [&one, &two] {
        let answer = listed(registry).await;
        assert_eq!(ids(&answer), ["r1"]);
        let left = answer.instances[0].expires_in_ms;
        assert!(left <= 2_000, "{left} ms left of a 2 s TTL");
    }
    let stopped = Instant::now();
    for registry in [&one, &two] {
        eventually(PATIENCE, "the lapsed instance to go", || async {
            listed(registry).await.instances.is_empty().then_some(())
        })
        .await;
    }
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_millis(2_000) + Duration::from_secs(5),
        "gone after {took:?}"
    );
    let late = http.put(&beat).send().await.expect("heartbeat").status();
    assert_eq!(late, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_an_etcd_member_loses_no_registration() {
    let mut cluster = EtcdCluster::start(3).await;
    let prefix = fresh_prefix();
    let registry = replica(&cluster, &prefix).await;
    let mut statuses = Vec::new();
    for n in 0..60 {
        if n == 20 {
            cluster.stop(0);
        }
        statuses.push(register(&registry, &format!("r{n}"), 60_000).await);
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
    // A second replica, started now, reads all of them from the survivors.
    let late = replica(&cluster, &prefix).await;
    assert_eq!(listed(&late).await.instances.len(), 60);
    eventually(PATIENCE, "all 60 on the first replica", || async {
        (listed(&registry).await.instances.len() == 60).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_callers_carry_on_through_the_second_replica() {
    let cluster = EtcdCluster::start(3).await;
    let prefix = fresh_prefix();
    let (one, two) = (
        replica(&cluster, &prefix).await,
        replica(&cluster, &prefix).await,
    );
    let both = RegistryClient::new(
        [one.url.as_str(), two.url.as_str()],
        None,
        RegistryClientConfig::default(),
    )
    .expect("client");
    let backend = HttpBackend::start("ratings-1").await;
    let registration = Registration {
        ttl: Duration::from_millis(3_000),
        ..Registration::new(Address::new(&backend.url).expect("address"))
    };
    let lease = Lease::start(
        both.clone(),
        "ratings".parse().expect("valid"),
        "ratings-1".parse().expect("valid"),
        registration,
    );
    lease.registered().await;
    let resolver = Resolver::new(both, ResolverConfig::default());
    let client = ServiceClient::new(
        &resolver,
        &"ratings".parse().expect("valid"),
        ClientConfig::default(),
    );
    assert_eq!(client.get("/x").await.expect("served").status(), 200);

    let mut events = resolver.subscribe();
    one.stop().await;
    let stopped = Instant::now();
    // Callers never notice; the view stays live through replica 2.
    eventually(PATIENCE, "the resolver to follow replica 2", || async {
        assert_eq!(client.get("/x").await.expect("served").status(), 200);
        client.snapshot().registry_reachable.then_some(())
    })
    .await;
    // Generous for a loaded machine, and well under the 30 s long poll: the
    // resolver did not sit out a watch on the stopped replica.
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "took {:?}",
        stopped.elapsed()
    );
    let lost: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e.kind, EventKind::RegistryLost { .. }))
        .collect();
    assert!(lost.is_empty(), "the resolver lost the registry: {lost:?}");

    // The lease heartbeats through replica 2: still registered well past its
    // TTL. Checked throughout, until 4 s have passed (longer than the 3 s
    // TTL: this period is the claim, not a settling time) and replica 2 has
    // taken a TTL's worth of heartbeats: the instance stays listed there and
    // never has to register again, as a lapsed lease would.
    let (beats, registrations) = (
        counter(&two, "heartbeats").await,
        counter(&two, "registrations").await,
    );
    eventually(
        PATIENCE,
        "4 s and three heartbeats through replica 2",
        || async {
            assert_eq!(ids(&listed(&two).await), ["ratings-1"]);
            assert_eq!(
                counter(&two, "registrations").await,
                registrations,
                "the lease lapsed and registered again"
            );
            let beaten = counter(&two, "heartbeats").await - beats;
            (stopped.elapsed() > Duration::from_secs(4) && beaten >= 3).then_some(())
        },
    )
    .await;
    assert_eq!(client.get("/x").await.expect("served").status(), 200);
    lease
        .shutdown()
        .await
        .expect("deregistered through replica 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_etcd_writes_are_503_reads_go_on_and_everything_recovers() {
    let mut cluster = EtcdCluster::start(3).await;
    let prefix = fresh_prefix();
    let registry = replica(&cluster, &prefix).await;
    assert_eq!(
        register(&registry, "kept", 60_000).await,
        StatusCode::CREATED
    );

    for member in 0..3 {
        cluster.stop(member);
    }
    let refused = reqwest::Client::new()
        .put(registry.at("/v1/services/ratings/instances/new"))
        .json(&json!({"address": "http://127.0.0.1:8002"}))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert_eq!(
        ids(&listed(&registry).await),
        ["kept"],
        "reads from the last view"
    );
    let health = reqwest::get(registry.at("/_health?deep=true"))
        .await
        .expect("health");
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reqwest::get(registry.at("/_health"))
            .await
            .expect("health")
            .status(),
        200
    );

    for member in 0..3 {
        cluster.restart(member);
    }
    cluster.until_healthy().await;
    eventually(PATIENCE, "deep health to recover", || async {
        let health = reqwest::get(registry.at("/_health?deep=true")).await.ok()?;
        health.status().is_success().then_some(())
    })
    .await;
    assert_eq!(
        register(&registry, "new", 60_000).await,
        StatusCode::CREATED
    );
    eventually(PATIENCE, "both listed", || async {
        (ids(&listed(&registry).await) == ["kept", "new"]).then_some(())
    })
    .await;
}

/// One heartbeat through `registry`: its status.
async fn heartbeat(registry: &TestRegistry, id: &str) -> Option<StatusCode> {
    reqwest::Client::new()
        .put(registry.at(&format!("/v1/services/ratings/instances/{id}/heartbeat")))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()
        .map(|r| r.status())
}

/// A long-poll on `registry` from its current index: returns how long it
/// took to answer and the index it answered with.
async fn long_poll(registry: &TestRegistry, index: u64) -> (Duration, u64) {
    let started = Instant::now();
    let answer: ServiceInstances =
        reqwest::get(registry.at(&format!("/v1/services/ratings?index={index}&wait=30s")))
            .await
            .expect("long-poll")
            .json()
            .await
            .expect("json");
    (started.elapsed(), answer.index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_racing_its_deadline_gets_a_clean_answer_and_leaves_every_index_moving() {
    let cluster = EtcdCluster::start(3).await;
    let prefix = fresh_prefix();
    let replicas = [
        replica(&cluster, &prefix).await,
        replica(&cluster, &prefix).await,
    ];
    // Heartbeats from 12 ms before the 1 s deadline (as the registering
    // replica set it, when it answered) to right at it: the few
    // milliseconds of the heartbeat's own etcd calls straddle the deadline.
    let offsets_ms: [u64; 8] = [12, 9, 7, 5, 4, 3, 2, 0];
    for (trial, offset) in offsets_ms.iter().cycle().take(16).enumerate() {
        let id = format!("race-{trial}");
        assert_eq!(
            register(&replicas[0], &id, 1_000).await,
            StatusCode::CREATED
        );
        let answered = Instant::now();
        tokio::time::sleep_until((answered + Duration::from_millis(1_000 - offset)).into()).await;
        let answered = heartbeat(&replicas[0], &id).await;
        assert!(
            matches!(answered, Some(StatusCode::OK | StatusCode::NOT_FOUND)),
            "trial {trial} ({offset} ms before the deadline): {answered:?}"
        );
        // A later change wakes the long-polls of both replicas at once, and
        // their indexes stay etcd revisions (no replica's jumps past them).
        let indexes = [
            listed(&replicas[0]).await.index,
            listed(&replicas[1]).await.index,
        ];
        let polls = tokio::join!(
            long_poll(&replicas[0], indexes[0]),
            long_poll(&replicas[1], indexes[1]),
            async {
                // Both long-polls parked (or answered already: the race's
                // own change moved that replica's index meanwhile).
                for (registry, index) in replicas.iter().zip(indexes) {
                    eventually(PATIENCE, "the long-poll to park", || async {
                        let metrics = get_text(registry.at("/_metrics")).await?;
                        let parked = metrics.contains("beacon_registry_parked_watchers 1\n");
                        (parked || listed(registry).await.index != index).then_some(())
                    })
                    .await;
                }
                register(&replicas[trial % 2], &format!("wake-{trial}"), 60_000).await
            }
        );
        assert_eq!(polls.2, StatusCode::CREATED);
        for (n, (took, index)) in [polls.0, polls.1].into_iter().enumerate() {
            assert!(
                took < Duration::from_secs(2),
                "trial {trial}: replica {n}'s long-poll woke after {took:?}"
            );
            assert!(
                index < 1_000_000_000,
                "trial {trial}: replica {n}'s index {index} is no etcd revision"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_minority_deep_health_says_so_nothing_expires_and_nothing_acknowledged_is_undone() {
    const TTL_MS: u64 = 5_000;
    const INSTANCES: usize = 20;
    let mut cluster = EtcdCluster::start(3).await;
    let prefix = fresh_prefix();
    let replicas = std::sync::Arc::new([
        replica(&cluster, &prefix).await,
        replica(&cluster, &prefix).await,
    ]);
    for n in 0..INSTANCES {
        let id = format!("inst-{n}");
        assert_eq!(
            register(&replicas[n % 2], &id, TTL_MS).await,
            StatusCode::CREATED
        );
    }
    // Each instance heartbeats every second through alternate replicas,
    // registering again on a 404, and keeps the time of its last
    // acknowledged write and every 404 it got.
    let stop = tokio_util::sync::CancellationToken::new();
    let heartbeaters: Vec<_> = (0..INSTANCES)
        .map(|n| {
            let replicas = std::sync::Arc::clone(&replicas);
            let stop = stop.clone();
            tokio::spawn(async move {
                let id = format!("inst-{n}");
                let mut acknowledged = Instant::now();
                let mut undone = Vec::new();
                let mut turn = n;
                while !stop.is_cancelled() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    turn += 1;
                    let registry = &replicas[turn % 2];
                    match heartbeat(registry, &id).await {
                        Some(StatusCode::OK) => acknowledged = Instant::now(),
                        Some(StatusCode::NOT_FOUND) => {
                            // Within the TTL of an acknowledged write it
                            // undid that write; past it, it expired although
                            // it kept heartbeating: neither may happen.
                            let since = acknowledged.elapsed();
                            undone.push(format!("{id}: 404 {since:?} after an acknowledged write"));
                            if register(registry, &id, TTL_MS).await.is_success() {
                                acknowledged = Instant::now();
                            }
                        }
                        _ => {} // 503 while etcd has no quorum
                    }
                }
                undone
            })
        })
        .collect();

    // Two of three members down: no quorum.
    cluster.stop(1);
    cluster.stop(2);
    let outage = Instant::now();
    for (n, registry) in replicas.iter().enumerate() {
        eventually(
            PATIENCE,
            &format!("replica {n}'s deep health to say 503"),
            || async {
                let health = reqwest::get(registry.at("/_health?deep=true")).await.ok()?;
                (health.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())
            },
        )
        .await;
    }
    // Past the TTL with nobody able to renew: nothing expired.
    tokio::time::sleep_until((outage + Duration::from_millis(TTL_MS + 3_000)).into()).await;
    for (n, registry) in replicas.iter().enumerate() {
        assert_eq!(
            listed(registry).await.instances.len(),
            INSTANCES,
            "replica {n} dropped instances during the outage"
        );
    }

    cluster.restart(1);
    cluster.restart(2);
    cluster.until_healthy().await;
    for registry in replicas.iter() {
        eventually(PATIENCE, "deep health to recover", || async {
            let health = reqwest::get(registry.at("/_health?deep=true")).await.ok()?;
            health.status().is_success().then_some(())
        })
        .await;
    }
    // A few TTLs of heartbeats after quorum returned.
    tokio::time::sleep(Duration::from_millis(2 * TTL_MS)).await;
    stop.cancel();
    let mut undone = Vec::new();
    for heartbeater in heartbeaters {
        undone.extend(heartbeater.await.expect("heartbeater"));
    }
    assert!(
        undone.is_empty(),
        "heartbeats refused as unknown: {undone:?}"
    );
    for (n, registry) in replicas.iter().enumerate() {
        assert_eq!(
            listed(registry).await.instances.len(),
            INSTANCES,
            "replica {n} after the outage"
        );
    }
}

/// Registers `service`/`id` on `registry`, answering 200 or 201.
async fn register_in(registry: &TestRegistry, service: &str, id: &str, ttl_ms: u64) {
    let status = register_status(registry, service, id, ttl_ms).await;
    assert!(status.is_success(), "registering {service}/{id}: {status}");
}

async fn listing_of(registry: &TestRegistry, service: &str) -> ServiceInstances {
    reqwest::get(registry.at(&format!("/v1/services/{service}")))
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

async fn index_of(registry: &TestRegistry, service: &str) -> u64 {
    listing_of(registry, service).await.index
}

/// Every service's index on each of `replicas`, once they all agree.
async fn agreed_indexes(replicas: &[&TestRegistry], services: &[&str]) -> Vec<u64> {
    eventually(PATIENCE, "the replicas to agree on every index", || async {
        let mut seen = Vec::new();
        for registry in replicas {
            let mut indexes = Vec::new();
            for service in services {
                indexes.push(index_of(registry, service).await);
            }
            seen.push(indexes);
        }
        seen.windows(2)
            .all(|pair| pair[0] == pair[1])
            .then(|| seen.swap_remove(0))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_gives_every_service_the_index_the_others_give() {
    let cluster = EtcdCluster::start(3).await;
    let prefix = fresh_prefix();
    let (one, two) = (
        replica(&cluster, &prefix).await,
        replica(&cluster, &prefix).await,
    );
    let http = reqwest::Client::new();
    // Members that stay, heartbeating through the other replica (rewriting
    // their keys: revisions that are not membership changes).
    register_in(&one, "ratings", "r1", 60_000).await;
    register_in(&one, "ratings", "r2", 60_000).await;
    for _ in 0..3 {
        let beat = two.at("/v1/services/ratings/instances/r1/heartbeat");
        let status = http.put(beat).send().await.expect("heartbeat").status();
        assert_eq!(status, StatusCode::OK);
    }
    // A service that emptied by deregistration, and one by expiry.
    register_in(&one, "reviews", "v1", 60_000).await;
    let gone = http
        .delete(one.at("/v1/services/reviews/instances/v1"))
        .send()
        .await
        .expect("deregister")
        .status();
    assert!(gone.is_success(), "{gone}");
    register_in(&two, "carts", "c1", 1_000).await;
    eventually(PATIENCE, "carts/c1 to expire", || async {
        (index_of(&one, "carts").await > 0 && listed_in(&one, "carts").await == 0).then_some(())
    })
    .await;
    // A member removed by etcd itself, its lease revoked behind the
    // replicas' backs, as when a lease runs out with no replica to expire it.
    register_in(&one, "ratings", "r3", 60_000).await;
    let etcd = EtcdClient::new(cluster.urls());
    let (_, kvs) = etcd.range_prefix(&prefix).await.expect("range");
    let r3 = kvs
        .iter()
        .find(|kv| kv.key.ends_with("/ratings/r3"))
        .expect("r3's key");
    let revoked = etcd.revoke(r3.lease).await.expect("revoke");
    let services = ["ratings", "reviews", "carts"];
    let before = agreed_indexes(&[&one, &two], &services).await;
    assert!(
        before[0] > revoked,
        "the revoked lease moved ratings past {revoked}: {before:?}"
    );
    assert_eq!(listed_in(&one, "ratings").await, 2);

    // Replica two restarts: from its first answer it gives every service
    // the index replica one gives.
    drop(two);
    let restarted = replica(&cluster, &prefix).await;
    let mut after = Vec::new();
    for service in services {
        after.push(index_of(&restarted, service).await);
    }
    assert_eq!(after, before, "indexes of {services:?} after the restart");
    assert_eq!(agreed_indexes(&[&one, &restarted], &services).await, before);

    // And a change after the restart moves both to the same new index.
    register_in(&restarted, "reviews", "v2", 60_000).await;
    let moved = agreed_indexes(&[&one, &restarted], &services).await;
    assert!(moved[1] > before[1], "{moved:?} after {before:?}");
    assert_eq!((moved[0], moved[2]), (before[0], before[2]));
}

async fn listed_in(registry: &TestRegistry, service: &str) -> usize {
    listing_of(registry, service).await.instances.len()
}
