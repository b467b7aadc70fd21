//! Helpers of the ratings service's integration tests (beacon-testkit's).

#![allow(dead_code)] // each test binary uses a different subset

pub use beacon_testkit::*;

/// The text of `GET {url}/_metrics`.
pub async fn metrics_text(http: &reqwest::Client, url: &str) -> String {
    let answer = http.get(format!("{url}/_metrics")).send().await;
    let answer = answer.expect("GET /_metrics");
    answer.text().await.expect("metrics text")
}
