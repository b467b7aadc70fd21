//! The real `beacon-registry` binary: flags, serving, SIGTERM.

use beacon_kit::process::Service;
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_beacon-registry");

#[tokio::test]
async fn serves_the_api_and_exits_cleanly_on_sigterm() {
    let mut registry = Service::start(
        Path::new(BIN),
        &["--listen", "127.0.0.1:0", "--token", "t0ken"],
    )
    .expect("beacon-registry starts");
    let url = registry.url.clone();
    let client = reqwest::Client::new();
    let instance = format!("{url}/v1/services/ratings/instances/ratings-1");
    let denied = client
        .put(&instance)
        .json(&serde_json::json!({"address": "http://127.0.0.1:8001"}))
        .send()
        .await
        .expect("request");
    assert_eq!(denied.status(), 401);
    let created = client
        .put(&instance)
        .bearer_auth("t0ken")
        .json(&serde_json::json!({"address": "http://127.0.0.1:8001"}))
        .send()
        .await
        .expect("request");
    assert_eq!(created.status(), 201);
    let listed: serde_json::Value = client
        .get(format!("{url}/v1/services/ratings"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["instances"][0]["id"], "ratings-1");

    // A parked blocking query must not hold shutdown up.
    let watch = tokio::spawn({
        let client = client.clone();
        let index = listed["index"].as_u64().expect("index");
        let url = format!("{url}/v1/services/ratings?index={index}&wait=60s");
        async move { client.get(url).send().await.map(|r| r.status()) }
    });
    let parked = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = client
            .get(format!("{url}/_metrics"))
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("text");
        if metrics.contains("beacon_registry_parked_watchers 1") {
            break;
        }
        assert!(Instant::now() < parked, "the query never parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    registry.signal("TERM");
    let status = registry.wait(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0), "graceful exit");
    let watched = watch.await.expect("watch task");
    assert_eq!(
        watched.expect("answered before the server went away"),
        200,
        "the parked query is answered at shutdown"
    );
}

#[test]
fn a_bad_flag_exits_2_naming_it() {
    for (args, named) in [
        (vec!["--listen", "nowhere"], "--listen"),
        (vec!["--store", "floppy"], "--store"),
        (vec!["--token", ""], "--token"),
        (vec!["--frobnicate"], "--frobnicate"),
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
    let addr = taken.local_addr().expect("addr").to_string();
    let out = Command::new(BIN)
        .args(["--listen", &addr])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}
