//! The changes feed as one long answer (`stream=true`): a line per change,
//! in order, that a watcher applies to end with what the registry lists; a
//! line with no changes after `wait` of quiet; the same bytes for every
//! watcher at the same index; bad input refused before the stream starts;
//! the stream ends when the registry stops.

use beacon_testkit::{eventually, TestRegistry};
use beacon_wire::{Instance, ServiceChanges, ServiceInstances};
use serde_json::json;
use std::time::Duration;
use tokio::time::timeout;

/// A stream's lines as they come.
struct Lines {
    response: reqwest::Response,
    pending: Vec<u8>,
}

impl Lines {
    async fn open(url: String) -> Self {
        let response = reqwest::get(url).await.expect("stream opened");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/x-ndjson",
            "a stream is NDJSON"
        );
        Self {
            response,
            pending: Vec::new(),
        }
    }

    /// The next whole line, raw; `None` when the stream ended.
    async fn next_raw(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(line);
            }
            let chunk = timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("a line within 10 s")
                .expect("read");
            self.pending.extend_from_slice(&chunk?);
        }
    }

    async fn next(&mut self) -> ServiceChanges {
        let line = self.next_raw().await.expect("a line, not the end");
        serde_json::from_slice(&line).expect("each line is a changes answer")
    }
}

async fn register(registry: &TestRegistry, id: &str, port: u16) {
    reqwest::Client::new()
        .put(registry.at(&format!("/v1/services/ratings/instances/{id}")))
        .json(&json!({"address": format!("http://127.0.0.1:{port}")}))
        .send()
        .await
        .expect("register")
        .error_for_status()
        .expect("registered");
}

async fn deregister(registry: &TestRegistry, id: &str) {
    reqwest::Client::new()
        .delete(registry.at(&format!("/v1/services/ratings/instances/{id}")))
        .send()
        .await
        .expect("deregister")
        .error_for_status()
        .expect("deregistered");
}

async fn get_json<T: serde::de::DeserializeOwned>(url: String) -> T {
    let answer = reqwest::get(url).await.expect("answered");
    answer.json().await.expect("json")
}

fn ids(instances: &[Instance]) -> Vec<String> {
    let mut ids: Vec<String> = instances.iter().map(|i| i.id.to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_stream_carries_every_change_in_order_and_ends_with_the_registry() {
    let registry = TestRegistry::start(None).await;
    register(&registry, "ratings-1", 8001).await;
    let mut lines = Lines::open(registry.at("/v1/services/ratings/changes?stream=true")).await;
    let first = lines.next().await;
    assert!(
        first.snapshot,
        "without an index the first line is a snapshot"
    );
    let mut view = first.instances.clone().expect("a snapshot's instances");
    let mut index = first.index;

    register(&registry, "ratings-2", 8002).await;
    register(&registry, "ratings-3", 8003).await;
    deregister(&registry, "ratings-1").await;
    // Three changes, in one line or several; each line's index is past
    // the one before, and applying them gives the registry's list.
    let listed: ServiceInstances = get_json(registry.at("/v1/services/ratings")).await;
    let mut changes = Vec::new();
    while index < listed.index {
        let line = lines.next().await;
        assert!(!line.snapshot, "a watcher that keeps up gets no snapshot");
        assert!(line.index > index, "the index went back or stood still");
        line.apply_to(&mut view);
        changes.extend(line.changes.iter().map(|c| c.id.to_string()));
        index = line.index;
    }
    assert_eq!(index, listed.index);
    assert_eq!(changes, ["ratings-2", "ratings-3", "ratings-1"]);
    assert_eq!(ids(&view), ids(&listed.instances));

    registry.stop().await;
    let end = timeout(Duration::from_secs(10), lines.next_raw())
        .await
        .expect("the stream ends once the registry stops");
    assert!(end.is_none(), "no line after shutdown");
}

#[tokio::test]
async fn a_quiet_stream_still_sends_a_line_after_wait() {
    let registry = TestRegistry::start(None).await;
    register(&registry, "ratings-1", 8001).await;
    let start: ServiceChanges = get_json(registry.at("/v1/services/ratings/changes")).await;
    // A wait under the floor counts as 1 s: the stream never spins.
    let url = format!(
        "/v1/services/ratings/changes?stream=true&index={}&wait=0ms",
        start.index
    );
    let mut lines = Lines::open(registry.at(&url)).await;
    let started = std::time::Instant::now();
    let quiet = lines.next().await;
    assert!(started.elapsed() >= Duration::from_millis(900), "it spun");
    assert_eq!(quiet.index, start.index);
    assert!(!quiet.snapshot && quiet.changes.is_empty());
    registry.stop().await;
}

#[tokio::test]
async fn watchers_at_the_same_index_get_the_same_bytes_made_once() {
    let registry = TestRegistry::start(None).await;
    register(&registry, "ratings-1", 8001).await;
    let mut watchers = Vec::new();
    for _ in 0..5 {
        let mut lines = Lines::open(registry.at("/v1/services/ratings/changes?stream=true")).await;
        lines.next().await;
        watchers.push(lines);
    }
    // Every watcher parked on the index before the change.
    eventually(Duration::from_secs(10), "five parked watchers", || async {
        let metrics = beacon_testkit::get_text(registry.at("/_metrics")).await?;
        metrics
            .lines()
            .any(|l| l == "beacon_registry_parked_watchers 5")
            .then_some(())
    })
    .await;
    let reused_before = reused(&registry).await;
    register(&registry, "ratings-2", 8002).await;
    let mut seen = Vec::new();
    for lines in &mut watchers {
        seen.push(lines.next_raw().await.expect("a line"));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "lines differ");
    assert!(
        reused(&registry).await >= reused_before + 4,
        "the delta was made more than once"
    );
    registry.stop().await;
}

async fn reused(registry: &TestRegistry) -> u64 {
    let metrics = beacon_testkit::get_text(registry.at("/_metrics"))
        .await
        .expect("metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("beacon_registry_answers_reused_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("answers reused counted")
}

#[tokio::test]
async fn bad_stream_queries_are_refused_before_the_stream_starts() {
    let registry = TestRegistry::start(None).await;
    let http = reqwest::Client::new();
    for (query, status, code) in [
        ("stream=maybe", 400, "invalid_query"),
        ("stream=true&index=soon", 400, "invalid_query"),
        ("stream=true&wait=forever", 400, "invalid_query"),
        ("stream=true&subset=2", 400, "invalid_query"),
        (
            "stream=true&subset=2&client=0123456789abcdef",
            404,
            "unknown_lease",
        ),
    ] {
        let answer = http
            .get(registry.at(&format!("/v1/services/ratings/changes?{query}")))
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), status, "{query}");
        let body: serde_json::Value = answer.json().await.expect("json error");
        assert_eq!(body["error"]["code"], code, "{query}");
    }
    registry.stop().await;
}
