//! Clients that check who they call: with `verify_identity`, an instance
//! whose certificate names another service — valid, signed by the same CA
//! — never gets a call; its breaker counts the refusal and the call goes
//! elsewhere. Real TLS servers on 127.0.0.1:0 with certificates from
//! `ThrowawayPki` (what `beacon-certs` issues). Multi-threaded: a server
//! stopping gracefully needs its HTTP/2 clients to answer.

mod support;

use axum::{routing::get, Router};
use beacon::{
    net::tls::ClientTls, BreakerState, ClientConfig, ClientError, ServiceClient, ServiceView,
};
use beacon_kit::tls::{server_config, ThrowawayPki, TlsListener};
use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

/// A throwaway PKI in a directory of its own, removed at the end.
struct Pki {
    dir: PathBuf,
    files: ThrowawayPki,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("beacon-identity-{name}-{}", std::process::id()));
        let files = ThrowawayPki::generate(&dir).expect("certificates");
        Self { dir, files }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTPS instance serving with `service`'s certificate (`None`: the
/// plain server certificate, which names no service), counting the
/// requests that reach it.
async fn instance(pki: &ThrowawayPki, service: Option<&str>) -> (String, Arc<AtomicUsize>) {
    let (cert, key) = match service {
        Some(service) => {
            let identity = pki.service_identity(service);
            (identity.cert, identity.key)
        }
        None => (pki.server_cert.clone(), pki.server_key.clone()),
    };
    let config = server_config(&cert, &key, None).expect("server TLS");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = tcp.local_addr().expect("addr").port();
    let listener = TlsListener::new(tcp, config).expect("listener");
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let app = Router::new().route(
        "/ratings/camera",
        get(move || async move {
            counted.fetch_add(1, Ordering::Relaxed);
            r#"{"thing":"camera","stars":4.5}"#
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("https://127.0.0.1:{port}"), hits)
}

fn client(view: Arc<ServiceView>, pki: &ThrowawayPki, verify: bool) -> ServiceClient {
    let tls = ClientTls {
        ca: Some(pki.ca.clone()),
        identity: None,
    };
    let config = ClientConfig {
        tls: Some(tls.config().expect("client TLS")),
        hedging: None,
        verify_identity: verify,
        ..ClientConfig::default()
    };
    ServiceClient::for_view(view, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_another_services_certificate_never_gets_a_call() {
    let pki = Pki::new("rogue");
    let (ratings_1, real_1) = instance(&pki.files, Some("ratings")).await;
    let (ratings_2, real_2) = instance(&pki.files, Some("ratings")).await;
    let (rogue, rogue_hits) = instance(&pki.files, Some("market")).await;
    let view = support::instances(&[&ratings_1, &rogue, &ratings_2]);

    // Without the check, the rogue's valid certificate is enough.
    let trusting = client(Arc::clone(&view), &pki.files, false);
    for _ in 0..30 {
        trusting.get("/ratings/camera").await.expect("answered");
    }
    assert!(
        rogue_hits.load(Ordering::Relaxed) > 0,
        "without the check, the rogue takes calls"
    );

    let rogue_hits_before = rogue_hits.load(Ordering::Relaxed);
    let real_before = real_1.load(Ordering::Relaxed) + real_2.load(Ordering::Relaxed);
    let checking = client(
        support::instances(&[&ratings_1, &rogue, &ratings_2]),
        &pki.files,
        true,
    );
    for call in 0..60 {
        let answer = checking
            .get("/ratings/camera")
            .await
            .unwrap_or_else(|e| panic!("call {call}: {}", e.chain()));
        assert_eq!(answer.status(), 200);
    }
    assert_eq!(
        rogue_hits.load(Ordering::Relaxed),
        rogue_hits_before,
        "no call reached the instance with another service's certificate"
    );
    let real_after = real_1.load(Ordering::Relaxed) + real_2.load(Ordering::Relaxed);
    assert_eq!(
        real_after - real_before,
        60,
        "every call was answered by ratings"
    );
    let snapshot = checking.snapshot();
    let rogue_seen = snapshot
        .instances
        .iter()
        .find(|i| i.address.as_str() == rogue)
        .expect("rogue in the view");
    assert!(
        rogue_seen.failures >= 1,
        "its breaker counted: {rogue_seen:?}"
    );
    assert_ne!(rogue_seen.breaker, BreakerState::Closed, "{rogue_seen:?}");
    let why = rogue_seen.last_error.as_deref().unwrap_or_default();
    assert!(
        why.contains("spiffe://beacon/service/market") && why.contains("not ratings"),
        "the error says what it showed: {why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_names_no_service_or_speaks_plain_http_is_refused_typed() {
    let pki = Pki::new("unnamed");
    // The plain server certificate is valid for 127.0.0.1 but names no
    // service (only `localhost`).
    let (unnamed, unnamed_hits) = instance(&pki.files, None).await;
    let backend = support::backend::Backend::start("plain").await;
    for url in [unnamed.as_str(), backend.url.as_str()] {
        let checking = client(support::one_instance(url), &pki.files, true);
        let error = checking
            .get("/ratings/camera")
            .await
            .expect_err("no proof of identity");
        let ClientError::IdentityMismatch { address, mismatch } = &error else {
            panic!("{url}: not an identity mismatch: {}", error.chain());
        };
        assert_eq!(address.as_str(), url);
        assert_eq!(mismatch.expected, "ratings");
        assert!(
            mismatch.presented == "dns:localhost" || mismatch.presented.contains("plain http"),
            "{url}: {mismatch}"
        );
    }
    assert_eq!(unnamed_hits.load(Ordering::Relaxed), 0);
    assert_eq!(backend.hits(), 0, "no request went over plain http");
}
