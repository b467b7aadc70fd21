//! Helpers of the client library's integration tests: beacon-testkit's,
//! plus test backends and a registry-backends-client fixture.

#![allow(dead_code)] // each test binary uses a different subset

pub use beacon_testkit::*;

pub mod backend;
pub mod cluster;

/// A fixed view of one `ratings` instance, `ratings-1` at `url`: no
/// registry, for tests of what a call does on the wire.
pub fn one_instance(url: &str) -> std::sync::Arc<beacon::ServiceView> {
    instances(&[url])
}

/// A fixed view of `ratings` instances `ratings-1`, `ratings-2`... at `urls`.
pub fn instances(urls: &[&str]) -> std::sync::Arc<beacon::ServiceView> {
    let listed: Vec<_> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            (
                format!("ratings-{}", i + 1).parse().expect("id"),
                beacon::wire::Address::new(url).expect("address"),
            )
        })
        .collect();
    beacon::ServiceView::fixed(
        "ratings".parse().expect("name"),
        &listed,
        &beacon::ResolverConfig::default(),
    )
}

/// Where an in-memory transport's request was sent: its URI's authority
/// (`10.0.0.1:80`), which names the instance.
pub fn authority_of<B>(request: &http::Request<B>) -> String {
    request
        .uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default()
}
