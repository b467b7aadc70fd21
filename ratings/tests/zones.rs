//! Zones end to end: real `beacon-ratings` processes registered with
//! `--zone`, a real registry, and a Beacon client in zone a.

mod support;

use beacon::{ClientConfig, RegistryClient, Resolver, ResolverConfig, ServiceClient};
use beacon_kit::process::Service;
use beacon_ratings::wire::Rating;
use std::{process::Command, time::Duration};
use support::{eventually, TestRegistry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_in_zone_a_is_served_in_zone_a() {
    let registry = TestRegistry::start(None).await;
    let _instances: Vec<Service> = [(1, "a"), (2, "a"), (3, "b"), (4, "b")]
        .into_iter()
        .map(|(n, zone)| support::start_ratings(&registry.url, n, &["--zone", zone]))
        .collect();
    let resolver = Resolver::new(
        RegistryClient::from_list(&registry.url, None).expect("registry client"),
        ResolverConfig::default(),
    );
    let config = ClientConfig {
        zone: Some("a".into()),
        ..ClientConfig::default()
    };
    let client = ServiceClient::new(&resolver, &"ratings".parse().expect("name"), config);
    // Every instance registered, each with its zone.
    let zones = eventually(Duration::from_secs(10), "four instances listed", || async {
        let zones: Vec<_> = client
            .snapshot()
            .instances
            .into_iter()
            .map(|i| i.zone)
            .collect();
        (zones.len() == 4).then_some(zones)
    })
    .await;
    assert_eq!(
        zones.iter().filter(|z| z.as_deref() == Some("a")).count(),
        2
    );
    assert_eq!(
        zones.iter().filter(|z| z.as_deref() == Some("b")).count(),
        2
    );
    let mut local = 0;
    for _ in 0..100 {
        let response = client
            .get("/ratings/camera")
            .await
            .expect("no caller error");
        let rating: Rating = serde_json::from_slice(response.body()).expect("a rating");
        if ["ratings-1", "ratings-2"].contains(&rating.instance.as_str()) {
            local += 1;
        }
    }
    assert!(local >= 95, "{local} of 100 served in zone a");
}

#[test]
fn a_malformed_zone_is_refused_by_name() {
    let output = Command::new(support::binary("beacon-ratings"))
        .args(["--zone", "Zone A", "--port", "0"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--zone"), "{stderr}");
}
