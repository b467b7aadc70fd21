//! Helpers of the ratings service's integration tests (beacon-testkit's).

#![allow(dead_code)] // each test binary uses a different subset

pub use beacon_testkit::*;

/// Starts `beacon-ratings` instance `n` on a free port, registered at
/// `registry_url`, with `extra` flags.
pub fn start_ratings(registry_url: &str, n: u16, extra: &[&str]) -> beacon_kit::process::Service {
    let instance = n.to_string();
    let mut args = vec![
        "--instance",
        &instance,
        "--port",
        "0",
        "--registry",
        registry_url,
        // Tests switch faults; a token, when given, still guards them.
        "--allow-faults",
    ];
    args.extend_from_slice(extra);
    beacon_kit::process::Service::start(&binary("beacon-ratings"), &args)
        .expect("beacon-ratings starts")
}

/// The text of `GET {url}/_metrics`.
pub async fn metrics_text(http: &reqwest::Client, url: &str) -> String {
    let answer = http.get(format!("{url}/_metrics")).send().await;
    let answer = answer.expect("GET /_metrics");
    answer.text().await.expect("metrics text")
}

/// The value of the sample named `name` in a metrics text; 0 if absent.
pub fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}
