//! `GET`/`PUT /_faults` on the real binary: faults change while it runs,
//! only with the instance's token, and bad input is refused with a code;
//! an instance with neither a token nor `--allow-faults` takes no faults.

mod support;

use beacon_ratings::wire::FaultSettings;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::TestRegistry;

const TOKEN: &str = "s3cret";

async fn put(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = http.put(format!("{url}/_faults")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await.expect("PUT /_faults");
    let status = answer.status();
    (status, answer.json().await.expect("a JSON answer"))
}

async fn rating(http: &reqwest::Client, url: &str) -> reqwest::Response {
    let answer = http.get(format!("{url}/ratings/camera")).send().await;
    answer.expect("GET /ratings/camera")
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_change_at_run_time_with_the_token_only() {
    let registry = TestRegistry::start(Some(TOKEN)).await;
    let ratings = support::start_ratings(&registry.url, 1, &["--token", TOKEN]);
    let (http, url) = (reqwest::Client::new(), ratings.url.clone());
    let current = || async {
        let answer = http
            .get(format!("{url}/_faults"))
            .send()
            .await
            .expect("GET");
        answer.json::<FaultSettings>().await.expect("settings")
    };
    let none = FaultSettings::default();
    assert_eq!(current().await, none);

    let slow = json!({"delay_ms": 150, "fail_percent": 0});
    let (status, body) = put(&http, &url, None, slow.clone()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, body) = put(&http, &url, Some("wrong"), slow.clone()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert_eq!(current().await, none, "refused changes change nothing");

    for (bad, expected) in [
        (
            json!({"delay_ms": 600_001, "fail_percent": 0}),
            "invalid_faults",
        ),
        (
            json!({"delay_ms": 0, "fail_percent": 101}),
            "invalid_faults",
        ),
        (json!({"delay_ms": -1, "fail_percent": 0}), "invalid_body"),
        (
            json!({"delay_ms": 0, "fail_percent": 0, "capacity": 100_001}),
            "invalid_faults",
        ),
        (
            json!({"delay_ms": 0, "fail_percent": 0, "warmup_ms": 3_600_001}),
            "invalid_faults",
        ),
        (
            json!({"delay_ms": 0, "fail_percent": 0, "capacity": -4}),
            "invalid_body",
        ),
        (json!({"delay_ms": 10}), "invalid_body"),
        (
            json!({"delay_ms": 10, "fail_percent": 0, "extra": 1}),
            "invalid_body",
        ),
        (json!("slow please"), "invalid_body"),
    ] {
        let (status, body) = put(&http, &url, Some(TOKEN), bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(code(&body), expected, "{bad}: {body}");
    }
    assert_eq!(current().await, none, "bad input changes nothing");

    let (status, body) = put(&http, &url, Some(TOKEN), slow).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(current().await.delay_ms, 150);
    let metrics = support::metrics_text(&http, &url).await;
    assert!(
        metrics.contains("beacon_ratings_fault_delay_seconds 0.15"),
        "{metrics}"
    );
    assert!(
        metrics.contains("beacon_ratings_fault_fail_ratio 0.0"),
        "{metrics}"
    );
    let started = Instant::now();
    let answer = rating(&http, &url).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "answered late"
    );

    let failing = json!({"delay_ms": 0, "fail_percent": 100});
    assert_eq!(
        put(&http, &url, Some(TOKEN), failing).await.0,
        StatusCode::OK
    );
    let answer = rating(&http, &url).await;
    assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = answer.json().await.expect("JSON error");
    assert_eq!(code(&body), "injected_failure");

    let heal = json!({"delay_ms": 0, "fail_percent": 0});
    assert_eq!(put(&http, &url, Some(TOKEN), heal).await.0, StatusCode::OK);
    let answer = rating(&http, &url).await;
    assert_eq!(answer.status(), StatusCode::OK);
    // The log is read from the process's output as it comes: wait for it.
    ratings
        .until_logged("faults now: delay 0 ms, failing 0%", Duration::from_secs(5))
        .await;
    ratings.stop().expect("stops");
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_or_allow_faults_the_fault_switch_is_closed() {
    let registry = TestRegistry::start(None).await;
    let ratings = beacon_kit::process::Service::start(
        &support::binary("beacon-ratings"),
        &[
            "--instance",
            "1",
            "--port",
            "0",
            "--registry",
            &registry.url,
        ],
    )
    .expect("beacon-ratings starts");
    let http = reqwest::Client::new();
    let slow = json!({"delay_ms": 150, "fail_percent": 0});
    let (status, body) = put(&http, &ratings.url, None, slow).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "faults_disabled")
    );
    let answer = http
        .get(format!("{}/_faults", ratings.url))
        .send()
        .await
        .expect("GET");
    let current: FaultSettings = answer.json().await.expect("settings");
    assert_eq!(current.delay_ms, 0, "nothing changed");
    assert_eq!(rating(&http, &ratings.url).await.status(), StatusCode::OK);
    ratings.stop().expect("stops");
    registry.stop().await;
}
