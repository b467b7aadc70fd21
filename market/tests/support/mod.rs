//! Helpers of the market's integration tests: beacon-testkit's, plus the
//! demo's topology as processes and a headless browser.

#![allow(dead_code)] // each test binary uses a different subset

pub use beacon_testkit::*;

pub mod browser;
pub mod demo;
pub mod script;
pub mod stores;

/// The session's CSRF token, as the page gives it to its scripts.
pub fn csrf_token(page: &str) -> String {
    let marker = r#"<meta name="csrf-token" content=""#;
    let start = page.find(marker).expect("the page has a CSRF token") + marker.len();
    let end = page[start..].find('"').expect("closing quote") + start;
    page[start..end].to_owned()
}

/// Sends `request` and reads its answer's JSON (any status).
pub async fn json_of(request: reqwest::RequestBuilder) -> serde_json::Value {
    request
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("a JSON answer")
}
