//! `make demo DCS=2` as a person runs it: two sites on one machine, each a
//! registry, ratings and a market with its own store, each market failing
//! over to the other site. Uses the demo's fixed ports (8400, 8500,
//! 8001–8003, 5000, 5100), as demo_over_tls.rs does, one binary at a time.

mod support;

use serde_json::Value;
use std::{path::PathBuf, process::Command, time::Duration};
use support::{eventually, script::DemoScript};

/// How long a demo step may take to show.
const PATIENCE: Duration = Duration::from_secs(60);

/// `GET url` as JSON, if it answers.
async fn json(url: &str) -> Option<Value> {
    let response = reqwest::get(url).await.ok()?;
    response.json().await.ok()
}

/// Whether every rating `/api/things` at `market` shows is live from one
/// of `instances`.
async fn live_from(market: &str, instances: &[&str]) -> bool {
    let Some(things) = json(&format!("{market}/api/things")).await else {
        return false;
    };
    things.as_array().is_some_and(|things| {
        !things.is_empty()
            && things.iter().all(|t| {
                let rating = &t["rating"];
                rating["source"] == "live"
                    && rating["instance"]
                        .as_str()
                        .is_some_and(|i| instances.contains(&i))
            })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_demo_dcs_2_runs_two_sites_that_fail_over_to_each_other() {
    let run_dir: PathBuf =
        std::env::temp_dir().join(format!("beacon-demo-sites-{}", std::process::id()));
    let mut demo = DemoScript::start(&run_dir, &[("DCS", "2")]);
    let (a, b) = ("http://127.0.0.1:5000", "http://127.0.0.1:5100");

    // Each market's ratings come from its own site.
    eventually(
        PATIENCE,
        "site a's market on site a's instances",
        || async {
            live_from(a, &["ratings-1", "ratings-2"])
                .await
                .then_some(())
        },
    )
    .await;
    eventually(PATIENCE, "site b's market on site b's instance", || async {
        live_from(b, &["ratings-3"]).await.then_some(())
    })
    .await;
    // Each registry says its site; each panel lists both sites.
    let health = json("http://127.0.0.1:8500/_health")
        .await
        .expect("registry b");
    assert_eq!(health["dc"], "b", "{health}");
    let status = json(&format!("{b}/api/status")).await.expect("status");
    let sites: Vec<(&str, &str)> = status["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap_or(""),
                i["dc"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        sites,
        [("ratings-3", "b"), ("ratings-1", "a"), ("ratings-2", "a")],
        "{status}"
    );

    // Site b loses its only instance (`make stopRatings INSTANCE=3`): its
    // market's ratings come, live, from site a.
    let stopped = Command::new("scripts/ratings.sh")
        .args(["stop", "3"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("RUN_DIR", &run_dir)
        .status()
        .expect("run scripts/ratings.sh");
    assert!(stopped.success());
    eventually(
        PATIENCE,
        "site b's market on site a's instances",
        || async {
            live_from(b, &["ratings-1", "ratings-2"])
                .await
                .then_some(())
        },
    )
    .await;

    assert!(demo.interrupt(), "the demo did not stop within 20 s of ^C");
    let _ = std::fs::remove_dir_all(&run_dir);
}
