//! The changes feed on registry replicas over etcd: writes through either
//! replica (and leases that etcd ends itself) reach a watcher of either
//! one as changes that rebuild the list exactly, and a restarted replica
//! sends a watcher that was further ahead of its load a snapshot.

mod support;

use beacon::wire::{Instance, ServiceChanges};
use beacon_registry::server::Backend;
use serde_json::json;
use std::time::Duration;
use support::{
    etcd::{fresh_prefix, EtcdCluster},
    eventually, TestRegistry,
};

const PATIENCE: Duration = Duration::from_secs(15);

async fn replica(cluster: &EtcdCluster, prefix: &str) -> TestRegistry {
    let backend = Backend::Etcd {
        urls: cluster.urls(),
        prefix: prefix.to_owned(),
    };
    TestRegistry::start_with("127.0.0.1:0", backend, None).await
}

/// A watcher of one replica: the instances it has and their index.
/// Two registry replicas on one etcd, each with a watcher caught up.
struct Replicas {
    cluster: EtcdCluster,
    prefix: String,
    one: TestRegistry,
    two: TestRegistry,
    of_one: Watcher,
    of_two: Watcher,
}

impl Replicas {
    async fn start() -> Self {
        let cluster = EtcdCluster::start(1).await;
        let prefix = fresh_prefix();
        let (one, two) = (
            replica(&cluster, &prefix).await,
            replica(&cluster, &prefix).await,
        );
        let (mut of_one, mut of_two) = (Watcher::default(), Watcher::default());
        caught_up(&mut of_one, &one).await;
        caught_up(&mut of_two, &two).await;
        Self {
            cluster,
            prefix,
            one,
            two,
            of_one,
            of_two,
        }
    }
}

#[derive(Debug, Default)]
struct Watcher {
    index: u64,
    instances: Vec<Instance>,
    snapshots_behind: u32,
}

impl Watcher {
    /// Reads the changes after its index (at once) and applies them.
    async fn read(&mut self, registry: &TestRegistry) {
        let url = registry.at(&format!(
            "/v1/services/ratings/changes?index={}&wait=0s",
            self.index
        ));
        let answer: ServiceChanges = reqwest::get(url)
            .await
            .expect("changes")
            .json()
            .await
            .expect("json");
        self.snapshots_behind += u32::from(answer.snapshot && self.index != 0);
        answer.apply_to(&mut self.instances);
        self.index = answer.index;
    }

    fn ids(&self) -> Vec<String> {
        self.instances.iter().map(|i| i.id.to_string()).collect()
    }
}

async fn listed_ids(registry: &TestRegistry) -> (u64, Vec<String>) {
    let answer: beacon::wire::ServiceInstances = reqwest::get(registry.at("/v1/services/ratings"))
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let ids = answer.instances.iter().map(|i| i.id.to_string()).collect();
    (answer.index, ids)
}

/// Reads until the watcher's instances are the replica's list.
async fn caught_up(watcher: &mut Watcher, registry: &TestRegistry) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        watcher.read(registry).await;
        let (index, ids) = listed_ids(registry).await;
        if watcher.index == index && watcher.ids() == ids {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher never equalled the list: {watcher:?} vs {index} {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn put(registry: &TestRegistry, id: &str, port: u16, ttl_ms: u64) {
    let body = json!({"address": format!("http://127.0.0.1:{port}"), "ttl_ms": ttl_ms});
    register(registry, id, body).await;
}

async fn register(registry: &TestRegistry, id: &str, body: serde_json::Value) {
    let status = reqwest::Client::new()
        .put(registry.at(&format!("/v1/services/ratings/instances/{id}")))
        .json(&body)
        .send()
        .await
        .expect("register")
        .status();
    assert!(status.is_success(), "{id}: {status}");
}

async fn delete(registry: &TestRegistry, id: &str) {
    let status = reqwest::Client::new()
        .delete(registry.at(&format!("/v1/services/ratings/instances/{id}")))
        .send()
        .await
        .expect("deregister")
        .status();
    assert!(status.is_success() || status == 404, "{id}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_of_either_replica_rebuild_the_list_from_changes_alone() {
    let Replicas {
        cluster,
        prefix,
        one,
        two,
        mut of_one,
        mut of_two,
    } = Replicas::start().await;
    // Writes through both replicas, a move of address, deregistrations and
    // a lease that runs out.
    for round in 0..6u16 {
        let (writer, other) = if round % 2 == 0 {
            (&one, &two)
        } else {
            (&two, &one)
        };
        put(writer, &format!("r{round}"), 8000 + round, 60_000).await;
        put(other, "moving", 9000 + round, 60_000).await;
        if round >= 2 {
            delete(writer, &format!("r{}", round - 2)).await;
        }
        caught_up(&mut of_one, &one).await;
        caught_up(&mut of_two, &two).await;
    }
    put(&one, "short", 7000, 1_000).await;
    caught_up(&mut of_two, &two).await;
    assert!(of_two.ids().contains(&"short".to_owned()));
    eventually(PATIENCE, "the short lease to end on both", || async {
        let gone_one = !listed_ids(&one).await.1.contains(&"short".to_owned());
        let gone_two = !listed_ids(&two).await.1.contains(&"short".to_owned());
        (gone_one && gone_two).then_some(())
    })
    .await;
    caught_up(&mut of_one, &one).await;
    caught_up(&mut of_two, &two).await;
    assert_eq!(of_one.ids(), of_two.ids());
    assert!(!of_one.ids().contains(&"short".to_owned()));
    assert_eq!(
        (of_one.snapshots_behind, of_two.snapshots_behind),
        (0, 0),
        "no watcher needed a snapshot after its first"
    );

    // Replica two goes away; changes happen without it; it restarts. Its
    // watcher, behind the index it loads, gets a snapshot; one at the
    // present index (replica one's) gets changes only.
    drop(two);
    put(&one, "while-down", 7002, 60_000).await;
    delete(&one, "moving").await;
    caught_up(&mut of_one, &one).await;
    let restarted = replica(&cluster, &prefix).await;
    of_two.read(&restarted).await;
    assert_eq!(
        of_two.snapshots_behind, 1,
        "behind the restarted replica's load"
    );
    assert_eq!(of_two.ids(), listed_ids(&restarted).await.1);
    assert_eq!(of_two.ids(), of_one.ids());
    put(&one, "after", 7001, 60_000).await;
    caught_up(&mut of_two, &restarted).await;
    caught_up(&mut of_one, &restarted).await;
    assert_eq!(
        (of_one.snapshots_behind, of_two.snapshots_behind),
        (0, 1),
        "changes only, from either replica, once up to date"
    );
}

async fn grant(registry: &TestRegistry, ttl_ms: u64) -> String {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(registry.at("/v1/leases"))
        .json(&json!({ "ttl_ms": ttl_ms }))
        .send()
        .await
        .expect("grant")
        .json()
        .await
        .expect("json");
    answer["lease"].as_str().expect("a lease id").to_owned()
}

async fn put_on(registry: &TestRegistry, id: &str, port: u16, lease: &str) {
    let body = json!({"address": format!("http://127.0.0.1:{port}"), "lease": lease});
    register(registry, id, body).await;
}

/// A shared lease granted through one replica is kept alive and ended
/// through the other; its instances, registered through both, go in one
/// change on each replica; one left to run out goes on both too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_lease_serves_both_replicas_and_takes_its_instances_when_it_ends() {
    let Replicas {
        cluster: _cluster,
        one,
        two,
        mut of_one,
        mut of_two,
        ..
    } = Replicas::start().await;
    put(&one, "own", 7000, 60_000).await;
    let lease = grant(&one, 3_000).await;
    for i in 0..40u16 {
        let via = if i % 2 == 0 { &one } else { &two };
        put_on(via, &format!("s{i}"), 8000 + i, &lease).await;
    }
    caught_up(&mut of_one, &one).await;
    caught_up(&mut of_two, &two).await;
    assert_eq!(of_two.ids().len(), 41);
    // Keepalives through replica two hold all 40 for three lease lengths.
    let keepalive = two.at(&format!("/v1/leases/{lease}/keepalive"));
    let http = reqwest::Client::new();
    for _ in 0..9 {
        let status: serde_json::Value = http
            .put(&keepalive)
            .send()
            .await
            .expect("keepalive")
            .json()
            .await
            .expect("json");
        assert_eq!(status["instances"], 40, "{status}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        listed_ids(&one).await.1.len(),
        41,
        "replica one saw the keepalives"
    );
    // Ended through replica one: all 40 go, on both.
    let ended = http
        .delete(one.at(&format!("/v1/leases/{lease}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(ended.status(), 204);
    assert_eq!(
        listed_ids(&one).await.1,
        ["own"],
        "gone at once where it ended"
    );
    caught_up(&mut of_one, &one).await;
    caught_up(&mut of_two, &two).await;
    assert_eq!(of_two.ids(), ["own"]);
    // Another lease, left to run out: its instances go on both replicas.
    let short = grant(&two, 1_000).await;
    for i in 0..5u16 {
        put_on(&one, &format!("t{i}"), 9000 + i, &short).await;
    }
    caught_up(&mut of_two, &two).await;
    assert_eq!(of_two.ids().len(), 6);
    eventually(PATIENCE, "the short lease to end on both", || async {
        let on_one = listed_ids(&one).await.1.len();
        let on_two = listed_ids(&two).await.1.len();
        (on_one == 1 && on_two == 1).then_some(())
    })
    .await;
    caught_up(&mut of_one, &one).await;
    caught_up(&mut of_two, &two).await;
    assert_eq!(
        (of_one.snapshots_behind, of_two.snapshots_behind),
        (0, 0),
        "lease ends reach watchers as changes"
    );
    let gone = http.put(&keepalive).send().await.expect("keepalive");
    assert_eq!(gone.status(), 404);
}
