//! The real `beacon-ratings` binary against a real registry.

mod support;

use beacon::{wire::ServiceName, RegistryClient};
use beacon_kit::process::Service;
use beacon_registry::server;
use std::{process::Command, time::Duration};
use tokio::{net::TcpListener, time::Instant};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_beacon-ratings");

struct Registry {
    url: String,
    client: RegistryClient,
    stop: CancellationToken,
}

/// The registry runs in the test's own runtime, which is multi-threaded so
/// that it keeps answering (deregistrations above all) while a test thread
/// blocks in `Child::wait`.
async fn registry() -> Registry {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    tokio::spawn(server::run(listener, Default::default(), stop.clone()));
    let client = RegistryClient::from_list(&url, None).expect("client");
    Registry { url, client, stop }
}

/// Starts instance `n` on a free port.
fn start(registry: &Registry, n: u16, extra: &[&str]) -> Service {
    support::start_ratings(&registry.url, n, extra)
}

/// Waits for a clean exit.
fn exits_cleanly(service: &mut Service) {
    let status = service.wait(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0));
}

fn ratings() -> ServiceName {
    "ratings".parse().expect("valid")
}

/// Polls the registry until the listed ids equal `ids`, within `limit`.
async fn until_listed(registry: &Registry, ids: &[&str], limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let listed: Vec<String> = registry
            .client
            .resolve(&ratings())
            .await
            .expect("resolve")
            .instances
            .iter()
            .map(|i| i.id.to_string())
            .collect();
        if listed == ids {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "still {listed:?} after {limit:?}, want {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_serves_and_deregisters_on_sigterm() {
    let registry = registry().await;
    let mut service = start(&registry, 7, &[]);
    let url = service.url.clone();
    until_listed(&registry, &["ratings-7"], Duration::from_secs(5)).await;
    let listed = registry.client.resolve(&ratings()).await.expect("resolve");
    assert_eq!(listed.instances[0].address.as_str(), url);

    let rating: serde_json::Value = reqwest::get(format!("{url}/ratings/camera"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        rating,
        serde_json::json!({"thing": "camera", "stars": 4.5, "instance": "ratings-7"})
    );
    let unknown = reqwest::get(format!("{url}/ratings/piano"))
        .await
        .expect("get");
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unknown_thing");
    let health: serde_json::Value = reqwest::get(format!("{url}/_health"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    let metrics = reqwest::get(format!("{url}/_metrics"))
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("beacon_ratings_http_request_duration_seconds"),
        "{metrics}"
    );

    service.signal("TERM");
    let gone_after = until_listed(&registry, &[], Duration::from_secs(1)).await;
    assert!(gone_after < Duration::from_secs(1));
    exits_cleanly(&mut service);
    registry.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_instance_expires_and_comes_back_when_resumed() {
    let registry = registry().await;
    let mut service = start(&registry, 3, &["--ttl-ms", "1000"]);
    until_listed(&registry, &["ratings-3"], Duration::from_secs(5)).await;
    service.signal("STOP");
    // Paused longer than its TTL: the lease lapses.
    until_listed(&registry, &[], Duration::from_secs(5)).await;
    service.signal("CONT");
    // Back within one heartbeat interval (ttl/3), plus slack.
    let back_after = until_listed(&registry, &["ratings-3"], Duration::from_secs(3)).await;
    assert!(
        back_after < Duration::from_millis(1_000),
        "back after {back_after:?}"
    );
    service.signal("TERM");
    exits_cleanly(&mut service);
    registry.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_and_delays() {
    let registry = registry().await;
    let mut failing = start(&registry, 4, &["--fail-percent", "100"]);
    let failing_url = failing.url.clone();
    for _ in 0..10 {
        let response = reqwest::get(format!("{failing_url}/ratings/camera"))
            .await
            .expect("get");
        assert_eq!(response.status(), 500);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "injected_failure");
    }
    let mut slow = start(&registry, 5, &["--delay-ms", "300"]);
    let slow_url = slow.url.clone();
    for _ in 0..3 {
        let started = Instant::now();
        let response = reqwest::get(format!("{slow_url}/ratings/camera"))
            .await
            .expect("get");
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
    for service in [&mut failing, &mut slow] {
        service.signal("TERM");
        exits_cleanly(service);
    }
    registry.stop.cancel();
}

#[test]
fn bad_flags_exit_2_naming_them() {
    for (args, named) in [
        (vec!["--instance", "0"], "--instance"),
        (vec!["--instance", "two"], "--instance"),
        (vec!["--fail-percent", "101"], "--fail-percent"),
        (vec!["--delay-ms=-1"], "--delay-ms"),
        (vec!["--ttl-ms", "10"], "--ttl-ms"),
        (vec!["--registry", "ftp://x"], "--registry"),
        (vec!["--port", "70000"], "--port"),
    ] {
        let out = Command::new(BIN).args(&args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = Command::new(BIN)
        .args(["--port", &port])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}
