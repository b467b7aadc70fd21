//! Deadlines across hops, with the real `beacon-ratings` binary at the end
//! of the chain: a caller's budget reaches ratings less what the hop in
//! between spent, and a spent budget costs ratings no work.

mod support;

use axum::{extract::State, http::StatusCode, routing::get, Router};
use beacon::{
    deadline::{DeadlineLayer, DEADLINE_HEADER},
    wire::Address,
    ClientConfig, ClientError, ResolverConfig, ServiceClient, ServiceView,
};
use beacon_kit::process::Service;
use beacon_ratings::wire::Rating;
use serde_json::Value;
use std::{sync::Arc, time::Duration};
use support::{metrics_text, TestRegistry};
use tokio::net::TcpListener;

/// One ratings instance, started on a free port.
async fn ratings() -> (TestRegistry, Service) {
    let registry = TestRegistry::start(None).await;
    let ratings = support::start_ratings(&registry.url, 1, &[]);
    (registry, ratings)
}

/// The rating answers ratings gave (status 200), from its own metrics.
async fn ratings_served(http: &reqwest::Client, url: &str) -> u64 {
    support::counter(
        &metrics_text(http, url).await,
        r#"beacon_ratings_http_request_duration_seconds_count{method="GET",route="/ratings/{thing}",status="200"}"#,
    )
}

/// A service in the middle of the chain, as a user would write one: it
/// takes `spend` of its caller's time, then asks ratings through Beacon,
/// behind Beacon's [`DeadlineLayer`]. Answers ratings' body, or 504 with
/// the client's error.
async fn middle_hop(ratings_url: &str, spend: Duration) -> String {
    let view = ServiceView::fixed(
        "ratings".parse().expect("name"),
        &[(
            "ratings-1".parse().expect("id"),
            Address::new(ratings_url).expect("address"),
        )],
        &ResolverConfig::default(),
    );
    // Its own deadline is generous: the caller's budget is what binds.
    let config = ClientConfig {
        deadline: Duration::from_secs(5),
        attempt_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    let client = Arc::new(ServiceClient::for_view(view, config));
    let handler = move |State(client): State<Arc<ServiceClient>>| async move {
        tokio::time::sleep(spend).await;
        match client.get("/ratings/camera").await {
            Ok(response) => (StatusCode::OK, response.into_body().to_vec()),
            Err(error) => (StatusCode::GATEWAY_TIMEOUT, error.to_string().into_bytes()),
        }
    };
    let app = Router::new()
        .route("/camera", get(handler))
        .with_state(client)
        .layer(DeadlineLayer::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn get_with_budget(http: &reqwest::Client, url: &str, budget_ms: &str) -> reqwest::Response {
    http.get(url)
        .header(DEADLINE_HEADER.as_str(), budget_ms)
        .send()
        .await
        .expect("answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratings_gets_what_is_left_of_the_caller_s_budget() {
    let (_registry, ratings) = ratings().await;
    let http = reqwest::Client::new();
    let middle = middle_hop(&ratings.url, Duration::from_millis(200)).await;
    let answer = get_with_budget(&http, &format!("{middle}/camera"), "300").await;
    assert_eq!(answer.status(), 200);
    let rating: Rating = answer.json().await.expect("ratings' answer");
    let budget = rating.budget_ms.expect("ratings saw a budget");
    // 300 ms less the 200 the middle spent (and the hop's own time).
    assert!(budget <= 100, "ratings saw {budget} ms");
    assert!(budget > 0, "ratings saw {budget} ms");

    // Without a budget from its caller, the middle's calls keep its own
    // deadline, and ratings is told that.
    let answer = http
        .get(format!("{middle}/camera"))
        .send()
        .await
        .expect("answered");
    let rating: Rating = answer.json().await.expect("ratings' answer");
    let budget = rating.budget_ms.expect("ratings saw a budget");
    assert!((4_000..=5_000).contains(&budget), "ratings saw {budget} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_costs_ratings_no_work() {
    let (_registry, ratings) = ratings().await;
    let http = reqwest::Client::new();
    let served = ratings_served(&http, &ratings.url).await;

    // The middle spends more than its caller gave it: its call to ratings
    // is never sent.
    let middle = middle_hop(&ratings.url, Duration::from_millis(150)).await;
    let answer = get_with_budget(&http, &format!("{middle}/camera"), "100").await;
    assert_eq!(answer.status(), 504);
    let error = answer.text().await.expect("text");
    assert_eq!(
        error,
        ClientError::DeadlineExceeded {
            deadline: Duration::ZERO
        }
        .to_string()
    );

    // A request that arrives with nothing left is refused unserved.
    let answer = get_with_budget(&http, &format!("{}/ratings/camera", ratings.url), "0").await;
    assert_eq!(answer.status(), 408);
    let body: Value = answer.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "deadline_expired");

    // A malformed budget is the caller's mistake, named.
    let answer = get_with_budget(&http, &format!("{}/ratings/camera", ratings.url), "soon").await;
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "invalid_deadline");

    let text = metrics_text(&http, &ratings.url).await;
    assert_eq!(
        support::counter(&text, "beacon_ratings_deadline_refused_total"),
        1
    );
    assert_eq!(ratings_served(&http, &ratings.url).await, served, "{text}");
}
