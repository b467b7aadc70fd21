//! The market behind `DeadlineLayer`, against real registry, ratings and
//! market processes: its ratings calls keep to its caller's budget, and a
//! spent budget is refused unserved.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::{
    demo::{all_live_from, Demo},
    eventually,
};

const PATIENCE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_market_keeps_its_ratings_calls_within_its_caller_s_budget() {
    let demo = Demo::start(&[1], &[]);
    eventually(PATIENCE, "all live from ratings-1", || async {
        let (shown, _) = demo.things().await;
        all_live_from(&shown, &["ratings-1"]).then_some(())
    })
    .await;
    // Ratings now answers after 600 ms: past the market's 300 ms attempt
    // timeout, so the market shows cached ratings either way.
    demo.set_faults(1, 600, 0).await;
    let (shown, took) = demo.things().await;
    assert!(
        shown.iter().all(|(_, source, _)| source == "cached"),
        "{shown:?}"
    );
    assert!(
        took >= Duration::from_millis(300),
        "waited its attempt timeout: {took:?}"
    );
    // Given 100 ms by its caller, it waits no longer than that.
    let (shown, took) = demo.things_within(Some("100")).await;
    assert!(
        shown.iter().all(|(_, source, _)| source == "cached"),
        "{shown:?}"
    );
    assert!(
        took < Duration::from_millis(250),
        "kept to the budget: {took:?}"
    );

    // A spent budget is refused at once, and counted.
    let http = reqwest::Client::new();
    let answer = http
        .get(demo.market_url("/api/things"))
        .header("beacon-deadline-ms", "0")
        .send()
        .await
        .expect("market answers");
    assert_eq!(answer.status(), 408);
    let body: Value = answer.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "deadline_expired");
    let metrics = http
        .get(demo.market_url("/_metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("beacon_market_deadline_refused_total 1"),
        "{metrics}"
    );
}
