//! Two sites as real processes: a registry per site (`--dc a`, `--dc b`),
//! a ratings instance in each, and site a's market told of site b's
//! registry (`--remote-dc b=URL`). The market's ratings come from its own
//! site; with its own site's instance gone they come, live, from site b;
//! once it is back they come home.

mod support;

use beacon_kit::process::Service;
use serde_json::Value;
use std::time::Duration;
use support::{
    binary,
    demo::{all_live_from, shown, Shown},
    stores,
};
use tokio::time::Instant;

/// How long any one change may take to show.
const PATIENCE: Duration = Duration::from_secs(15);

fn registry(dc: &str) -> Service {
    Service::start(
        &binary("beacon-registry"),
        &["--listen", "127.0.0.1:0", "--dc", dc],
    )
    .expect("registry starts")
}

fn ratings(n: &str, registry: &Service, dc: &str) -> Service {
    let args = [
        "--instance",
        n,
        "--port",
        "0",
        "--ttl-ms",
        "1500",
        "--registry",
        &registry.url,
        "--dc",
        dc,
    ];
    Service::start(&binary("beacon-ratings"), &args).expect("ratings starts")
}

/// `GET path` on `base`, as JSON.
async fn json(http: &reqwest::Client, base: &str, path: &str) -> Value {
    let response = http
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("json")
}

/// The ratings `/api/things` shows.
async fn things(http: &reqwest::Client, market: &str) -> Vec<Shown> {
    let body = json(http, market, "/api/things").await;
    shown(body.as_array().expect("a list"))
}

/// Waits until every rating the market shows is live from `instance`.
async fn all_from(http: &reqwest::Client, market: &str, instance: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let shown = things(http, market).await;
        if all_live_from(&shown, &[instance]) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never all from {instance}: {shown:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_market_fails_over_to_the_other_site_and_comes_home() {
    let (a, b) = (registry("a"), registry("b"));
    let http = reqwest::Client::new();
    let health = json(&http, &a.url, "/_health").await;
    assert_eq!(health["dc"], "a", "the registry says its site: {health}");
    let mut home = Some(ratings("1", &a, "a"));
    let _away = ratings("2", &b, "b");
    let db = stores::TestDb::sqlite();
    let remote = format!("b={}", b.url);
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--registry",
        &a.url,
        "--dc",
        "a",
        "--remote-dc",
        &remote,
        "--db",
        &db.url,
        "--secret",
        stores::SECRET,
    ];
    let market = Service::start(&binary("beacon-market"), &args).expect("market starts");
    all_from(&http, &market.url, "ratings-1").await;
    // Both sites' instances on the panel, each with its site.
    let status = json(&http, &market.url, "/api/status").await;
    let sites: Vec<(String, String)> = status["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap_or_default().to_owned(),
                i["dc"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sites,
        [
            ("ratings-1".to_owned(), "a".to_owned()),
            ("ratings-2".to_owned(), "b".to_owned())
        ],
        "{status}"
    );
    // While home is healthy, nothing crosses.
    for _ in 0..10 {
        assert!(all_live_from(
            &things(&http, &market.url).await,
            &["ratings-1"]
        ));
    }
    // Site a's only instance stops: site b answers, live.
    if let Some(instance) = home.take() {
        assert!(instance.stop().expect("exits").success());
    }
    all_from(&http, &market.url, "ratings-2").await;
    for _ in 0..10 {
        assert!(all_live_from(
            &things(&http, &market.url).await,
            &["ratings-2"]
        ));
    }
    // Back: home again.
    let _home = ratings("1", &a, "a");
    all_from(&http, &market.url, "ratings-1").await;
}
