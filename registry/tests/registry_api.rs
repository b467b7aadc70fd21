//! The registry's HTTP contract (README, "Registry API"), row by row, against the real
//! router served on 127.0.0.1:0 — once over the memory store and once over
//! the etcd store (a real etcd, with the `etcd-tests` feature), which must
//! behave the same.

mod support;

use beacon_registry::server::Backend;
use beacon_wire::{ErrorBody, ErrorCode, Instance, ServiceInstances, ServiceList};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{etcd, TestRegistry};

/// Which store the registry under test keeps its state in.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "etcd-tests"), allow(dead_code))]
enum Kind {
    Memory,
    Etcd,
}

async fn start(kind: Kind, token: Option<&str>) -> TestRegistry {
    let backend = match kind {
        Kind::Memory => Backend::Memory,
        Kind::Etcd => Backend::Etcd {
            urls: etcd::shared_urls(),
            prefix: etcd::fresh_prefix(),
        },
    };
    TestRegistry::start_with("127.0.0.1:0", backend, token).await
}

const R1: &str = "/v1/services/ratings/instances/ratings-1";

fn client() -> Client {
    Client::new()
}

async fn register(reg: &TestRegistry, path: &str, body: Value) -> Response {
    client()
        .put(reg.at(path))
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn resolve(reg: &TestRegistry, service: &str) -> ServiceInstances {
    client()
        .get(reg.at(&format!("/v1/services/{service}")))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

/// Asserts an error answer's status and code, returning its message.
async fn expect_error(response: Response, status: StatusCode, code: ErrorCode) -> String {
    assert_eq!(response.status(), status, "status");
    let body: ErrorBody = response.json().await.expect("error body is JSON");
    assert_eq!(body.error.code, code, "{}", body.error.message);
    assert!(!body.error.message.is_empty());
    body.error.message
}

async fn register_creates_then_replaces(kind: Kind) {
    let reg = start(kind, None).await;
    let body =
        json!({"address": "http://127.0.0.1:8001", "ttl_ms": 5000, "metadata": {"zone": "a"}});
    let created = register(&reg, R1, body.clone()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let instance: Instance = created.json().await.expect("instance");
    assert_eq!(instance.service.as_str(), "ratings");
    assert_eq!(instance.id.as_str(), "ratings-1");
    assert_eq!(instance.address.as_str(), "http://127.0.0.1:8001");
    assert_eq!(instance.metadata["zone"], "a");
    assert_eq!(instance.ttl_ms, 5000);
    assert!(instance.expires_in_ms <= 5000 && instance.expires_in_ms > 4000);
    assert!(instance.registered_at > 1_700_000_000_000, "wall-clock ms");

    let replaced = register(&reg, R1, body).await;
    assert_eq!(replaced.status(), StatusCode::OK);
    assert_eq!(resolve(&reg, "ratings").await.instances.len(), 1);

    let default_ttl: Instance = register(
        &reg,
        "/v1/services/ratings/instances/ratings-2",
        json!({"address": "http://127.0.0.1:8002"}),
    )
    .await
    .json()
    .await
    .expect("instance");
    assert_eq!(default_ttl.ttl_ms, 15_000);
    reg.stop().await;
}

async fn heartbeat_renews_and_404s_for_unknown_instances(kind: Kind) {
    let reg = start(kind, None).await;
    let unknown = client()
        .put(reg.at(&format!("{R1}/heartbeat")))
        .send()
        .await
        .expect("request");
    expect_error(unknown, StatusCode::NOT_FOUND, ErrorCode::UnknownInstance).await;

    register(
        &reg,
        R1,
        json!({"address": "http://127.0.0.1:8001", "ttl_ms": 1000}),
    )
    .await;
    let renewed = client()
        .put(reg.at(&format!("{R1}/heartbeat")))
        .send()
        .await
        .expect("request");
    assert_eq!(renewed.status(), StatusCode::OK);
    let instance: Instance = renewed.json().await.expect("instance");
    assert!(instance.expires_in_ms > 900);

    // Once the lease has run out the heartbeat is refused: the owner must re-register.
    support::eventually(Duration::from_secs(5), "the lease to run out", || async {
        resolve(&reg, "ratings")
            .await
            .instances
            .is_empty()
            .then_some(())
    })
    .await;
    let late = client()
        .put(reg.at(&format!("{R1}/heartbeat")))
        .send()
        .await
        .expect("request");
    expect_error(late, StatusCode::NOT_FOUND, ErrorCode::UnknownInstance).await;
    reg.stop().await;
}

async fn deregister_removes_and_404s_when_unknown(kind: Kind) {
    let reg = start(kind, None).await;
    register(&reg, R1, json!({"address": "http://127.0.0.1:8001"})).await;
    let gone = client().delete(reg.at(R1)).send().await.expect("request");
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert!(resolve(&reg, "ratings").await.instances.is_empty());
    let again = client().delete(reg.at(R1)).send().await.expect("request");
    expect_error(again, StatusCode::NOT_FOUND, ErrorCode::UnknownInstance).await;
    reg.stop().await;
}

async fn resolve_lists_live_instances_with_the_index_header(kind: Kind) {
    let reg = start(kind, None).await;
    let unknown = client()
        .get(reg.at("/v1/services/nobody"))
        .send()
        .await
        .expect("request");
    assert_eq!(unknown.status(), StatusCode::OK);
    assert_eq!(unknown.headers()["x-beacon-index"], "0");
    let body: ServiceInstances = unknown.json().await.expect("json");
    assert_eq!((body.index, body.instances.len()), (0, 0));

    register(
        &reg,
        "/v1/services/ratings/instances/ratings-2",
        json!({"address": "http://127.0.0.1:8002"}),
    )
    .await;
    register(&reg, R1, json!({"address": "http://127.0.0.1:8001"})).await;
    let response = client()
        .get(reg.at("/v1/services/ratings"))
        .send()
        .await
        .expect("request");
    let header: u64 = response.headers()["x-beacon-index"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    let body: ServiceInstances = response.json().await.expect("json");
    assert_eq!(body.index, header);
    let ids: Vec<&str> = body.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["ratings-1", "ratings-2"], "ordered by id");
    reg.stop().await;
}

async fn list_shows_every_service_with_live_instances(kind: Kind) {
    let reg = start(kind, None).await;
    register(&reg, R1, json!({"address": "http://127.0.0.1:8001"})).await;
    register(
        &reg,
        "/v1/services/market/instances/m1",
        json!({"address": "http://127.0.0.1:5000"}),
    )
    .await;
    let list: ServiceList = client()
        .get(reg.at("/v1/services"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = list.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["market", "ratings"]);
    assert_eq!(list.services[1].instances[0].id.as_str(), "ratings-1");
    assert!(list.index >= resolve(&reg, "ratings").await.index);
    reg.stop().await;
}

async fn health_and_metrics(kind: Kind) {
    let reg = start(kind, None).await;
    register(&reg, R1, json!({"address": "http://127.0.0.1:8001"})).await;
    for path in ["/_health", "/_health?deep=true"] {
        let health: Value = client()
            .get(reg.at(path))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        assert_eq!(health["status"], "ok");
        let store = match kind {
            Kind::Memory => "memory",
            Kind::Etcd => "etcd",
        };
        assert_eq!(health["store"], store);
        assert_eq!(health["instances"], 1);
    }
    let bad = client()
        .get(reg.at("/_health?deep=maybe"))
        .send()
        .await
        .expect("request");
    expect_error(bad, StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery).await;

    let metrics = client()
        .get(reg.at("/_metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    for line in [
        "beacon_registry_registrations_total 1",
        "beacon_registry_instances{service=\"ratings\"} 1",
        "beacon_registry_parked_watchers 0",
        "beacon_registry_http_request_duration_seconds_count{method=\"PUT\",route=\"/v1/services/{service}/instances/{id}\",status=\"201\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    reg.stop().await;
}

/// One bad request: method, path, body (sent as JSON when `json`), and the
/// status and code it must get.
struct BadCase {
    method: &'static str,
    path: String,
    body: &'static str,
    json: bool,
    status: u16,
    code: ErrorCode,
}

fn bad(
    method: &'static str,
    path: &str,
    body: &'static str,
    status: u16,
    code: ErrorCode,
) -> BadCase {
    let path = path.to_owned();
    BadCase {
        method,
        path,
        body,
        json: true,
        status,
        code,
    }
}

async fn every_bad_input_is_a_4xx_with_its_code_and_changes_nothing(kind: Kind) {
    use ErrorCode::*;
    let reg = start(kind, None).await;
    register(
        &reg,
        R1,
        json!({"address": "http://127.0.0.1:8001", "metadata": {"v": "1"}}),
    )
    .await;
    let before = resolve(&reg, "ratings").await;
    let long_name = format!("/v1/services/{}/instances/r1", "a".repeat(64));
    let ok_body = r#"{"address":"http://127.0.0.1:8001"}"#;
    let cases = [
        bad("PUT", R1, "{not json", 400, InvalidJson),
        bad("PUT", R1, "[1,2]", 400, InvalidJson),
        bad("PUT", R1, r#"{"ttl_ms":2000}"#, 400, InvalidJson),
        bad(
            "PUT",
            R1,
            r#"{"address":"http://127.0.0.1:8001","ttl":2000}"#,
            400,
            InvalidJson,
        ),
        bad(
            "PUT",
            R1,
            r#"{"address":"http://127.0.0.1:8001","metadata":{"a":1}}"#,
            400,
            InvalidJson,
        ),
        bad(
            "PUT",
            "/v1/services/Ratings/instances/r1",
            ok_body,
            400,
            InvalidName,
        ),
        bad(
            "PUT",
            "/v1/services/ratings/instances/-r1",
            ok_body,
            400,
            InvalidName,
        ),
        bad(
            "PUT",
            "/v1/services/ratings/instances/r%201",
            ok_body,
            400,
            InvalidName,
        ),
        bad("PUT", &long_name, ok_body, 400, InvalidName),
        bad(
            "PUT",
            R1,
            r#"{"address":"127.0.0.1:8001"}"#,
            400,
            InvalidAddress,
        ),
        bad(
            "PUT",
            R1,
            r#"{"address":"http://u:p@127.0.0.1:8001"}"#,
            400,
            InvalidAddress,
        ),
        bad(
            "PUT",
            R1,
            r#"{"address":"http://127.0.0.1"}"#,
            400,
            InvalidAddress,
        ),
        bad(
            "PUT",
            R1,
            r#"{"address":"http://127.0.0.1:8001","ttl_ms":999}"#,
            400,
            InvalidTtl,
        ),
        bad(
            "PUT",
            R1,
            r#"{"address":"http://127.0.0.1:8001","ttl_ms":-1}"#,
            400,
            InvalidTtl,
        ),
        bad(
            "PUT",
            R1,
            r#"{"address":"http://127.0.0.1:8001","ttl_ms":3600001}"#,
            400,
            InvalidTtl,
        ),
        BadCase {
            json: false,
            ..bad("PUT", R1, ok_body, 415, UnsupportedMediaType)
        },
        bad(
            "GET",
            "/v1/services/ratings?index=-1",
            "",
            400,
            InvalidQuery,
        ),
        bad(
            "GET",
            "/v1/services/ratings?index=1&wait=61s",
            "",
            400,
            InvalidQuery,
        ),
        bad(
            "GET",
            "/v1/services/ratings?index=1&wait=soon",
            "",
            400,
            InvalidQuery,
        ),
        // A wait without an index waits for nothing, but a bad one is
        // still a bad query.
        bad(
            "GET",
            "/v1/services/ratings?wait=forever",
            "",
            400,
            InvalidQuery,
        ),
        bad(
            "GET",
            "/v1/services/ratings?wait=-1s",
            "",
            400,
            InvalidQuery,
        ),
        bad("GET", "/v1/services/RATINGS", "", 400, InvalidName),
        bad("GET", "/v2/nothing", "", 404, NotFound),
        bad("POST", "/v1/services", "", 405, MethodNotAllowed),
    ];
    for case in cases {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).expect("method");
        let mut request = client().request(method, reg.at(&case.path));
        if !case.body.is_empty() {
            request = request.body(case.body);
        }
        if case.json {
            request = request.header("content-type", "application/json");
        }
        let response = request.send().await.expect("request");
        let status = StatusCode::from_u16(case.status).expect("status");
        let message = expect_error(response, status, case.code).await;
        eprintln!("{} {} -> {}: {message}", case.method, case.path, case.code);
    }
    let after = resolve(&reg, "ratings").await;
    assert_eq!(after.index, before.index, "no bad request changed state");
    assert_eq!(after.instances[0].address, before.instances[0].address);
    assert_eq!(after.instances[0].metadata, before.instances[0].metadata);
    reg.stop().await;
}

async fn bodies_over_64_kib_are_413(kind: Kind) {
    let reg = start(kind, None).await;
    // A body of `size` bytes: a registration of `address`, padded with
    // whitespace (metadata is capped far below the body limit).
    let padded = |address: &str, size: usize| {
        let body = format!(r#"{{"address": "{address}"}}"#);
        let padding = " ".repeat(size - body.len());
        let request = client()
            .put(reg.at(R1))
            .header("content-type", "application/json")
            .body(format!("{padding}{body}"));
        async move { request.send().await.expect("request") }
    };
    // Just under the limit is fine ...
    let ok = padded("http://127.0.0.1:8001", 64 * 1024).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    // ... just over it is not, and nothing changes.
    let before = resolve(&reg, "ratings").await.index;
    let big = padded("http://127.0.0.1:8009", 64 * 1024 + 1).await;
    expect_error(
        big,
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
    )
    .await;
    let after = resolve(&reg, "ratings").await;
    assert_eq!(after.index, before);
    assert_eq!(after.instances[0].address.as_str(), "http://127.0.0.1:8001");
    reg.stop().await;
}

async fn writes_need_the_token_and_reads_do_not(kind: Kind) {
    let reg = start(kind, Some("s3cret")).await;
    let c = client();
    let body = json!({"address": "http://127.0.0.1:8001"});
    let attempts = [
        c.put(reg.at(R1)).json(&body).send().await.expect("req"),
        c.put(reg.at(R1))
            .bearer_auth("wrong")
            .json(&body)
            .send()
            .await
            .expect("req"),
        c.put(reg.at(R1))
            .header("authorization", "s3cret")
            .json(&body)
            .send()
            .await
            .expect("req"),
        c.put(reg.at(&format!("{R1}/heartbeat")))
            .send()
            .await
            .expect("req"),
        c.delete(reg.at(R1)).send().await.expect("req"),
    ];
    for response in attempts {
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        expect_error(response, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    }
    // Auth is checked before the body: no hint about input to strangers.
    let junk = c.put(reg.at(R1)).body("{junk").send().await.expect("req");
    expect_error(junk, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    assert!(resolve(&reg, "ratings").await.instances.is_empty());

    let ok = c
        .put(reg.at(R1))
        .bearer_auth("s3cret")
        .json(&body)
        .send()
        .await
        .expect("req");
    assert_eq!(ok.status(), StatusCode::CREATED);
    let beat = c
        .put(reg.at(&format!("{R1}/heartbeat")))
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("req");
    assert_eq!(beat.status(), StatusCode::OK);
    for path in [
        "/v1/services/ratings",
        "/v1/services",
        "/_health",
        "/_metrics",
    ] {
        let read = c.get(reg.at(path)).send().await.expect("req");
        assert_eq!(read.status(), StatusCode::OK, "{path} is open");
    }
    let gone = c
        .delete(reg.at(R1))
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("req");
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    reg.stop().await;
}

/// A blocking query against `url`; returns the answer and how long it took.
async fn watch_at(
    url: String,
    service: &str,
    index: u64,
    wait: &str,
) -> (ServiceInstances, Duration) {
    let started = Instant::now();
    let body = client()
        .get(format!(
            "{url}/v1/services/{service}?index={index}&wait={wait}"
        ))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    (body, started.elapsed())
}

async fn watch(
    reg: &TestRegistry,
    service: &str,
    index: u64,
    wait: &str,
) -> (ServiceInstances, Duration) {
    watch_at(reg.url.clone(), service, index, wait).await
}

/// Waits until the registry reports `count` parked blocking queries.
async fn until_parked(reg: &TestRegistry, count: usize) {
    let line = format!("beacon_registry_parked_watchers {count}\n");
    support::eventually(Duration::from_secs(5), &line, || async {
        let metrics = client()
            .get(reg.at("/_metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        metrics.contains(&line).then_some(())
    })
    .await;
}

async fn blocking_queries_wake_on_change(kind: Kind) {
    let reg = start(kind, None).await;
    let index = resolve(&reg, "ratings").await.index;
    let watchers: Vec<_> = (0..20)
        .map(|_| tokio::spawn(watch_at(reg.url.clone(), "ratings", index, "30s")))
        .collect();
    // Register only once every watcher is parked, so the test proves wake-up.
    until_parked(&reg, 20).await;
    register(&reg, R1, json!({"address": "http://127.0.0.1:8001"})).await;
    for watcher in watchers {
        let (body, elapsed) = watcher.await.expect("watcher");
        assert_eq!(body.instances.len(), 1);
        assert!(body.index > index);
        assert!(
            elapsed < Duration::from_secs(10),
            "woken by the change, not the 30 s wait"
        );
    }
    reg.stop().await;
}

async fn a_noop_heartbeat_does_not_wake_watchers(kind: Kind) {
    let reg = start(kind, None).await;
    register(
        &reg,
        R1,
        json!({"address": "http://127.0.0.1:8001", "ttl_ms": 10000}),
    )
    .await;
    let index = resolve(&reg, "ratings").await.index;
    let url = reg.url.clone();
    let beats = tokio::spawn(async move {
        for _ in 0..10 {
            let r = client()
                .put(format!("{url}{R1}/heartbeat"))
                .send()
                .await
                .expect("req");
            assert_eq!(r.status(), StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let (body, elapsed) = watch(&reg, "ratings", index, "1s").await;
    beats.await.expect("heartbeats");
    assert_eq!(body.index, index);
    assert!(
        elapsed >= Duration::from_millis(1000),
        "returned early after {elapsed:?}"
    );
    reg.stop().await;
}

async fn an_index_from_another_registry_life_answers_at_once(kind: Kind) {
    let reg = start(kind, None).await;
    register(&reg, R1, json!({"address": "http://127.0.0.1:8001"})).await;
    let current = resolve(&reg, "ratings").await.index;
    for stale in [current + 1_000, current - 1] {
        let (body, elapsed) = watch(&reg, "ratings", stale, "30s").await;
        assert_eq!(body.index, current);
        assert!(
            elapsed < Duration::from_secs(5),
            "answered at once, not after 30 s"
        );
    }
    reg.stop().await;
}

async fn expiry_removes_the_instance_and_wakes_watchers(kind: Kind) {
    let reg = start(kind, None).await;
    register(
        &reg,
        R1,
        json!({"address": "http://127.0.0.1:8001", "ttl_ms": 1000}),
    )
    .await;
    let index = resolve(&reg, "ratings").await.index;
    let (body, elapsed) = watch(&reg, "ratings", index, "10s").await;
    assert!(body.instances.is_empty(), "gone after its TTL");
    assert!(body.index > index);
    // Woken at the deadline, not by the 10 s wait (250 ms is the contract;
    // the rest is slack for a loaded CI machine).
    assert!(elapsed < Duration::from_millis(3000), "took {elapsed:?}");
    reg.stop().await;
}

async fn shutdown_answers_parked_watchers_instead_of_waiting(kind: Kind) {
    let reg = start(kind, None).await;
    let watcher = tokio::spawn(watch_at(reg.url.clone(), "ratings", 0, "60s"));
    until_parked(&reg, 1).await;
    reg.stop().await;
    let (body, elapsed) = watcher.await.expect("watcher answered with a body");
    assert!(body.instances.is_empty());
    assert!(elapsed < Duration::from_secs(10));
}

/// Every contract test, once per store.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Kind::Memory).await
            })*
        }
        // Needs a real etcd: `make test` turns the feature on (and installs etcd).
        #[cfg(feature = "etcd-tests")]
        mod etcd_store {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Kind::Etcd).await
            })*
        }
    };
}

contract!(
    register_creates_then_replaces,
    heartbeat_renews_and_404s_for_unknown_instances,
    deregister_removes_and_404s_when_unknown,
    resolve_lists_live_instances_with_the_index_header,
    list_shows_every_service_with_live_instances,
    health_and_metrics,
    every_bad_input_is_a_4xx_with_its_code_and_changes_nothing,
    bodies_over_64_kib_are_413,
    writes_need_the_token_and_reads_do_not,
    blocking_queries_wake_on_change,
    a_noop_heartbeat_does_not_wake_watchers,
    an_index_from_another_registry_life_answers_at_once,
    expiry_removes_the_instance_and_wakes_watchers,
    shutdown_answers_parked_watchers_instead_of_waiting,
);

/// `GET /openapi.json` describes every route the server has (made from the
/// handlers, so a new route left out of the description fails here), and
/// its writes name the bearer scheme. schemathesis checks the answers
/// against it in `make test` (scripts/contract.sh).
#[tokio::test]
async fn the_api_description_covers_every_route() {
    let reg = start(Kind::Memory, None).await;
    let spec: Value = client()
        .get(reg.at("/openapi.json"))
        .send()
        .await
        .expect("openapi.json")
        .json()
        .await
        .expect("JSON");
    assert!(spec["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    let mut routes: Vec<String> = Vec::new();
    for (path, operations) in spec["paths"].as_object().expect("paths") {
        for method in operations.as_object().expect("operations").keys() {
            routes.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    routes.sort();
    assert_eq!(
        routes,
        [
            "DELETE /v1/leases/{lease}",
            "DELETE /v1/services/{service}/instances/{id}",
            "GET /_health",
            "GET /_metrics",
            "GET /v1/services",
            "GET /v1/services/{service}",
            "GET /v1/services/{service}/changes",
            "POST /v1/leases",
            "PUT /v1/leases/{lease}/keepalive",
            "PUT /v1/services/{service}/instances/{id}",
            "PUT /v1/services/{service}/instances/{id}/heartbeat",
        ]
    );
    let register = &spec["paths"]["/v1/services/{service}/instances/{id}"]["put"];
    assert!(register["responses"]["401"].is_object(), "{register}");
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    for schema in [
        "ServiceChanges",
        "Change",
        "ChangeOp",
        "GrantRequest",
        "LeaseGrant",
        "LeaseStatus",
    ] {
        assert!(
            spec["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
    reg.stop().await;
}
