//! The real `beacon-registry` binary: flags, serving, SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_beacon-registry");

/// Starts the binary on a free port and returns it with its base URL, read
/// from the "listening on" log line.
fn start(extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("BEACON_TOKEN")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn beacon-registry");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let url = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(url);
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the registry logs its address within 10 s");
    (child, url)
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn serves_the_api_and_exits_cleanly_on_sigterm() {
    let (mut child, url) = start(&["--token", "t0ken"]);
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
    terminate(&child);
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
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
