//! The gRPC example end to end: a real registry, two `beacon-grpc-ratings`
//! processes serving gRPC over TLS (HTTP/2 by ALPN), and a tonic client
//! whose channel is Beacon. One instance is hung (SIGSTOP): no caller sees
//! an error, hedges and retries answer from the other, and the hung one is
//! kept out.

use beacon::{
    net::tls::ClientTls, BreakerState, ClientConfig, RegistryClient, RegistryClientConfig,
    Resolver, ResolverConfig, ServiceClient,
};
use beacon_grpc_example::{grpc_client, pb::GetRatingRequest, SERVICE};
use beacon_kit::{process::Service, tls::ThrowawayPki};
use beacon_testkit::{eventually, TestRegistry};
use std::{collections::BTreeSet, path::Path, process::Command, sync::Arc, time::Duration};

const BIN: &str = env!("CARGO_BIN_EXE_beacon-grpc-ratings");

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn instance(registry: &str, pki: &ThrowawayPki, n: u16, more: &[&str]) -> Service {
    let n = n.to_string();
    let mut args = vec![
        "--registry",
        registry,
        "--ca",
        path(&pki.ca),
        "serve",
        "--instance",
        &n,
        "--tls-cert",
        path(&pki.server_cert),
        "--tls-key",
        path(&pki.server_key),
    ];
    args.extend_from_slice(more);
    Service::start(Path::new(BIN), &args).expect("instance starts")
}

/// A client of the ratings service through `registry`, trusting the CA;
/// the resolver lives as long as the client needs it.
fn client(registry: &str, pki: &ThrowawayPki) -> (Resolver, ServiceClient) {
    let tls = ClientTls {
        ca: Some(pki.ca.clone()),
        identity: None,
    }
    .config()
    .expect("client TLS");
    let registry_client =
        RegistryClient::from_list_with(registry, None, RegistryClientConfig::default())
            .expect("registry client");
    let resolver = Resolver::new(
        registry_client,
        ResolverConfig {
            tls: Some(Arc::clone(&tls)),
            ..ResolverConfig::default()
        },
    );
    let service = ServiceClient::new(
        &resolver,
        &SERVICE.parse().expect("name"),
        ClientConfig {
            tls: Some(tls),
            attempt_timeout: Duration::from_millis(500),
            ..ClientConfig::default()
        },
    );
    (resolver, service)
}

/// Instance 2 as `service` sees it.
fn second(service: &ServiceClient) -> Option<beacon::InstanceSnapshot> {
    service
        .snapshot()
        .instances
        .into_iter()
        .find(|i| i.id.as_str() == "grpc-ratings-2")
}

/// A registry, instances 1 and 2 (the second started with `second_flags`)
/// serving TLS with a throwaway CA written under `name`, and a client.
struct Setup {
    registry: TestRegistry,
    instances: [Service; 2],
    pki: ThrowawayPki,
    dir: std::path::PathBuf,
    _resolver: Resolver,
    service: ServiceClient,
}

async fn setup(name: &str, second_flags: &[&str]) -> Setup {
    let (pki, dir) = pki(name);
    let registry = TestRegistry::start(None).await;
    let instances = [
        instance(&registry.url, &pki, 1, &[]),
        instance(&registry.url, &pki, 2, second_flags),
    ];
    let (_resolver, service) = client(&registry.url, &pki);
    Setup {
        registry,
        instances,
        pki,
        dir,
        _resolver,
        service,
    }
}

fn pki(name: &str) -> (ThrowawayPki, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("beacon-grpc-{name}-{}", std::process::id()));
    (ThrowawayPki::generate(&dir).expect("certificates"), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_grpc_instance_costs_callers_nothing() {
    let Setup {
        registry,
        instances,
        pki,
        dir,
        _resolver,
        service,
    } = setup("hung", &[]).await;
    assert!(
        instances[0].url.starts_with("https://"),
        "{}",
        instances[0].url
    );
    let mut ratings = grpc_client(service.clone());
    let ask = |item: &str| GetRatingRequest { item: item.into() };

    // Both instances answer, balanced.
    let mut seen = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {seen:?} answered"
        );
        if let Ok(rating) = ratings.get_rating(ask("camera")).await {
            let rating = rating.into_inner();
            assert_eq!(rating.stars, 3);
            seen.insert(rating.served_by);
        }
    }

    // Bad input is a gRPC status, not a failure of the instance.
    let status = ratings.get_rating(ask("")).await.expect_err("empty item");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // Hang instance 2: every call still answered, by instance 1. At least
    // 40 calls, and on until one has met the hung instance and gone
    // elsewhere (a hedge won, or a retry): the balancer keeps away from an
    // instance that measured slower until its estimate decays, so the first
    // calls may all go to instance 1.
    instances[1].pause();
    let mut answered_by = Vec::new();
    let saved = || service.hedges().won + service.retries().retries;
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while answered_by.len() < 40 || saved() == 0 {
        assert!(
            std::time::Instant::now() < until,
            "no call met the hung instance in 30 s"
        );
        let rating = ratings
            .get_rating(ask("lamp"))
            .await
            .unwrap_or_else(|status| panic!("call {} failed: {status:?}", answered_by.len()));
        answered_by.push(rating.into_inner().served_by);
    }
    assert!(
        answered_by.iter().all(|by| by == "grpc-ratings-1"),
        "{answered_by:?}"
    );
    // The balancer learned: after the calls that met it timed out (their
    // verdicts reach the breaker even when a hedge won), the hung instance's
    // latency estimate keeps it out — or its breaker opened.
    let hung = eventually(
        Duration::from_secs(5),
        "the hung instance's attempts to end",
        || {
            let hung = second(&service);
            async move { hung.filter(|i| i.in_flight == 0 && i.failures >= 1) }
        },
    )
    .await;
    assert!(
        hung.failures <= 5 || hung.breaker == BreakerState::Open,
        "{hung:?}"
    );
    assert!(
        hung.latency_ms.is_some_and(|ms| ms >= 100.0) || hung.breaker == BreakerState::Open,
        "{hung:?}"
    );

    // The command-line client, through the same registry.
    let output = Command::new(BIN)
        .args([
            "--registry",
            &registry.url,
            "--ca",
            path(&pki.ca),
            "call",
            "camera",
            "--count",
            "3",
        ])
        .output()
        .expect("run the client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout
            .matches("camera: 3 stars (from grpc-ratings-1)")
            .count(),
        3,
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_answering_unavailable_is_routed_around_and_counted() {
    // Bound whole: the processes and the registry live as long as the test.
    let setup = setup("unavailable", &["--unavailable"]).await;
    let (service, dir) = (&setup.service, setup.dir.clone());
    eventually(Duration::from_secs(10), "both instances listed", || {
        let listed = service.view().endpoints().len();
        async move { (listed == 2).then_some(()) }
    })
    .await;
    // gRPC says UNAVAILABLE with HTTP 200: Beacon must still see a failure.
    let mut ratings = grpc_client(service.clone());
    for i in 0..30 {
        let rating = ratings
            .get_rating(GetRatingRequest {
                item: "lamp".into(),
            })
            .await
            .unwrap_or_else(|status| panic!("call {i} failed: {status:?}"));
        assert_eq!(rating.into_inner().served_by, "grpc-ratings-1");
    }
    let draining = second(service).expect("listed");
    assert!(draining.failures >= 1, "{draining:?}");
    assert_eq!(draining.successes, 0, "{draining:?}");
    assert!(
        draining
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("UNAVAILABLE")),
        "{draining:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
