//! Limits against floods, on the real binary: a new instance past
//! `--max-per-service` or `--max-instances` is 429 `too_many_instances`
//! (a replacement always passes, and room comes back as instances go);
//! metadata over 4 KiB is 400 `invalid_registration`; connections that
//! never finish their headers (a slowloris) neither stop `/_health` nor
//! stay open past the header timeout.

use beacon_kit::process::Service;
use serde_json::{json, Value};
use std::{
    path::Path,
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const BIN: &str = env!("CARGO_BIN_EXE_beacon-registry");

async fn register(url: &str, service: &str, id: &str, metadata: Value) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .put(format!("{url}/v1/services/{service}/instances/{id}"))
        .json(&json!({"address": "http://127.0.0.1:8001", "metadata": metadata}))
        .send()
        .await
        .expect("answered");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn new_instances_past_the_limits_are_refused_and_replacements_pass() {
    let registry = Service::start(
        Path::new(BIN),
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-instances",
            "3",
            "--max-per-service",
            "2",
        ],
    )
    .expect("beacon-registry starts");
    let url = registry.url.as_str();
    let none = json!({});
    assert_eq!(register(url, "a", "a-1", none.clone()).await.0, 201);
    assert_eq!(register(url, "a", "a-2", none.clone()).await.0, 201);
    let (status, body) = register(url, "a", "a-3", none.clone()).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "too_many_instances");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("service a")),
        "{body}"
    );
    // Replacing one is not a new one.
    assert_eq!(register(url, "a", "a-1", json!({"zone": "b"})).await.0, 200);
    assert_eq!(register(url, "b", "b-1", none.clone()).await.0, 201);
    let (status, body) = register(url, "b", "b-2", none.clone()).await;
    assert_eq!(status, 429);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("the registry")),
        "{body}"
    );
    // Room comes back as instances go.
    let gone = reqwest::Client::new()
        .delete(format!("{url}/v1/services/a/instances/a-2"))
        .send()
        .await
        .expect("answered");
    assert_eq!(gone.status(), 204);
    assert_eq!(register(url, "b", "b-2", none).await.0, 201);
}

#[tokio::test]
async fn metadata_over_4_kib_is_refused() {
    let registry = Service::start(Path::new(BIN), &["--listen", "127.0.0.1:0"])
        .expect("beacon-registry starts");
    let url = registry.url.as_str();
    // "k" and 4095 bytes: exactly the limit.
    let at_limit = json!({"k": "v".repeat(4095)});
    assert_eq!(register(url, "a", "a-1", at_limit).await.0, 201);
    let over = json!({"k": "v".repeat(4096)});
    let (status, body) = register(url, "a", "a-2", over).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_registration");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("4096")),
        "{body}"
    );
}

#[tokio::test]
async fn a_slowloris_neither_stops_health_nor_stays_past_the_header_timeout() {
    let registry = Service::start(Path::new(BIN), &["--listen", "127.0.0.1:0"])
        .expect("beacon-registry starts");
    let addr = registry.url.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut tcp = TcpStream::connect(&addr).await.expect("connects");
        // Headers begun, never finished.
        tcp.write_all(b"GET /_health HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("writes");
        slow.push(tcp);
    }
    let asked = Instant::now();
    let health = reqwest::Client::new()
        .get(format!("{}/_health", registry.url))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .expect("/_health answers within 1 s beside 300 slow connections");
    assert!(health.status().is_success());
    assert!(asked.elapsed() < Duration::from_secs(1));
    // Each slow connection is closed once the header timeout passes.
    let limit = beacon_kit::serve::HEADER_READ_TIMEOUT + Duration::from_secs(5);
    for tcp in &mut slow {
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(limit, tcp.read(&mut buf))
            .await
            .expect("closed by the server within the header timeout");
        // The end of the stream, or a 408 and then the end.
        if let Ok(n) = read {
            assert!(n == 0 || buf.starts_with(b"HTTP/1.1 408"), "{n} bytes");
        }
    }
}
