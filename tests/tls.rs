//! TLS: `https://` instances and registries reached with the right root,
//! refused clearly with a wrong one, and with mutual TLS only when the
//! client presents a certificate the server's CA signed. Real TLS servers
//! on 127.0.0.1:0, the registry as its real binary. Multi-threaded: a
//! server stopping gracefully asks its HTTP/2 clients to acknowledge, and
//! a blocking `stop()` on a single-threaded runtime would leave nobody to
//! answer.

mod support;

use axum::{routing::get, Router};
use beacon::{
    net::{
        http::error_chain,
        tls::{ClientTls, Identity},
    },
    wire::{Address, Registration},
    ClientConfig, ClientError, RegistryClient, RegistryClientConfig, Resolver, ResolverConfig,
    ServiceClient,
};
use beacon_kit::{
    process::Service,
    tls::{server_config, ThrowawayPki, TlsListener},
};
use beacon_testkit::eventually;
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

/// A throwaway PKI in a directory of its own, removed at the end.
struct Pki {
    dir: PathBuf,
    files: ThrowawayPki,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("beacon-tls-{name}-{}", std::process::id()));
        let files = ThrowawayPki::generate(&dir).expect("certificates");
        Self { dir, files }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A ratings-like instance over HTTPS; with `client_ca`, mutual TLS.
async fn https_instance(pki: &ThrowawayPki, client_ca: Option<&Path>) -> String {
    let config = server_config(&pki.server_cert, &pki.server_key, client_ca).expect("config");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = tcp.local_addr().expect("addr").port();
    let listener = TlsListener::new(tcp, config).expect("listener");
    let app = Router::new().route(
        "/ratings/camera",
        get(|| async { r#"{"thing":"camera","stars":4.5}"# }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("https://127.0.0.1:{port}")
}

fn client(url: &str, tls: ClientTls) -> ServiceClient {
    let view = support::one_instance(url);
    let config = ClientConfig {
        tls: Some(tls.config().expect("client TLS")),
        hedging: None,
        ..ClientConfig::default()
    };
    ServiceClient::for_view(view, config)
}

fn trusting(ca: &Path) -> ClientTls {
    ClientTls {
        ca: Some(ca.to_owned()),
        identity: None,
    }
}

fn refusal(error: &ClientError) -> String {
    error_chain(error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_instance_is_reached_with_the_right_root_and_refused_with_a_wrong_one() {
    let pki = Pki::new("roots");
    let url = https_instance(&pki.files, None).await;

    let answer = client(&url, trusting(&pki.files.ca))
        .get("/ratings/camera")
        .await
        .expect("the CA that signed it is trusted");
    assert_eq!(answer.status(), 200);
    assert!(std::str::from_utf8(answer.body())
        .expect("text")
        .contains("camera"));

    for (who, tls) in [
        ("another CA", trusting(&pki.files.other_ca)),
        ("Mozilla's roots only", ClientTls::default()),
    ] {
        let error = client(&url, tls)
            .get("/ratings/camera")
            .await
            .expect_err(who);
        let text = refusal(&error);
        assert!(
            text.contains("invalid peer certificate") && text.contains("UnknownIssuer"),
            "{who}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mutual_tls_only_a_client_with_a_certificate_from_the_ca_gets_in() {
    let pki = Pki::new("mtls");
    let url = https_instance(&pki.files, Some(&pki.files.ca)).await;

    let error = client(&url, trusting(&pki.files.ca))
        .get("/ratings/camera")
        .await
        .expect_err("no client certificate");
    let text = refusal(&error);
    assert!(text.contains(&url), "names the instance: {text}");

    let with_identity = ClientTls {
        identity: Some(Identity {
            cert: pki.files.client_cert.clone(),
            key: pki.files.client_key.clone(),
        }),
        ..trusting(&pki.files.ca)
    };
    let answer = client(&url, with_identity)
        .get("/ratings/camera")
        .await
        .expect("a certificate the CA signed");
    assert_eq!(answer.status(), 200);
}

/// The server certificate, its key and the CA, as command-line arguments.
fn texts(pki: &ThrowawayPki) -> [String; 3] {
    [&pki.server_cert, &pki.server_key, &pki.ca].map(|path| path.display().to_string())
}

/// A `beacon-registry` process serving HTTPS with `pki`'s server
/// certificate and token `t0ken`; `mutual`: client certificates required.
fn https_registry(pki: &ThrowawayPki, mutual: bool) -> Service {
    let [cert, key, ca] = texts(pki);
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--token",
        "t0ken",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];
    if mutual {
        args.extend(["--client-ca", &ca]);
    }
    Service::start(&beacon_testkit::binary("beacon-registry"), &args).expect("registry starts")
}

fn registry_client(url: &str, tls: ClientTls) -> RegistryClient {
    let config = RegistryClientConfig {
        tls: Some(tls.config().expect("client TLS")),
        ..RegistryClientConfig::default()
    };
    RegistryClient::new([url], Some("t0ken".into()), config).expect("client")
}

async fn register(client: &RegistryClient) -> Result<(), String> {
    let registration = Registration::new(Address::new("http://127.0.0.1:8001").expect("address"));
    client
        .register(
            &"ratings".parse().expect("name"),
            &"ratings-1".parse().expect("id"),
            &registration,
        )
        .await
        .map(|_| ())
        .map_err(|e| error_chain(&e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_over_tls_takes_a_token_write_from_a_client_that_trusts_its_ca() {
    let pki = Pki::new("registry");
    let registry = https_registry(&pki.files, false);
    assert!(
        registry.url.starts_with("https://127.0.0.1:"),
        "{}",
        registry.url
    );

    register(&registry_client(&registry.url, trusting(&pki.files.ca)))
        .await
        .expect("the token crosses TLS");
    let refused = register(&registry_client(&registry.url, ClientTls::default()))
        .await
        .expect_err("Mozilla's roots don't know the CA");
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    registry.stop().expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_requiring_client_certificates_refuses_a_write_without_one() {
    let pki = Pki::new("registry-mtls");
    let registry = https_registry(&pki.files, true);
    let refused = register(&registry_client(&registry.url, trusting(&pki.files.ca)))
        .await
        .expect_err("no client certificate");
    assert!(
        refused.contains(&registry.url),
        "names the registry: {refused}"
    );
    let as_who = |identity: Identity| ClientTls {
        identity: Some(identity),
        ..trusting(&pki.files.ca)
    };
    // A certificate the CA signed, but for no service, or for another.
    let nobody = as_who(Identity {
        cert: pki.files.client_cert.clone(),
        key: pki.files.client_key.clone(),
    });
    let refused = register(&registry_client(&registry.url, nobody))
        .await
        .expect_err("a certificate that names no service");
    assert!(refused.contains("forbidden"), "{refused}");
    let market = as_who(pki.files.service_identity("market"));
    let refused = register(&registry_client(&registry.url, market))
        .await
        .expect_err("market's certificate registering ratings");
    assert!(
        refused.contains("spiffe://beacon/service/market"),
        "names what it saw: {refused}"
    );
    // The service's own certificate (spiffe://beacon/service/ratings).
    let ratings = as_who(pki.files.service_identity("ratings"));
    register(&registry_client(&registry.url, ratings))
        .await
        .expect("ratings' certificate, and the token");
    registry.stop().expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_given_a_missing_certificate_file_says_which() {
    let output = std::process::Command::new(beacon_testkit::binary("beacon-registry"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent/server.pem",
            "--tls-key",
            "/nonexistent/server.key",
        ])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("/nonexistent/server.pem"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ratings_instance_over_tls_registers_with_a_tls_registry_and_is_called_through_it() {
    let pki = Pki::new("chain");
    let files = &pki.files;
    let registry = https_registry(files, false);
    let [cert, key, ca] = texts(files);
    let ratings = Service::start(
        &beacon_testkit::binary("beacon-ratings"),
        &[
            "--instance",
            "1",
            "--port",
            "0",
            "--registry",
            &registry.url,
            "--token",
            "t0ken",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--ca",
            &ca,
        ],
    )
    .expect("ratings starts");
    assert!(ratings.url.starts_with("https://"), "{}", ratings.url);

    let tls = trusting(&files.ca).config().expect("client TLS");
    let registry_client = RegistryClient::new(
        [registry.url.as_str()],
        None,
        RegistryClientConfig {
            tls: Some(Arc::clone(&tls)),
            ..RegistryClientConfig::default()
        },
    )
    .expect("registry client");
    let resolver = Resolver::new(
        registry_client,
        ResolverConfig {
            tls: Some(Arc::clone(&tls)),
            ..ResolverConfig::default()
        },
    );
    let client = ServiceClient::new(
        &resolver,
        &"ratings".parse().expect("name"),
        ClientConfig {
            tls: Some(tls),
            ..ClientConfig::default()
        },
    );
    let answer = eventually(Duration::from_secs(10), "ratings-1 over TLS", || async {
        client.get("/ratings/camera").await.ok()
    })
    .await;
    let body = std::str::from_utf8(answer.body()).expect("text").to_owned();
    assert!(body.contains("ratings-1"), "{body}");
    let served = answer
        .extensions()
        .get::<beacon::ServedBy>()
        .expect("served by");
    assert!(
        served.address.as_str().starts_with("https://"),
        "{served:?}"
    );
    ratings.stop().expect("ratings stops");
    registry.stop().expect("registry stops");
}

/// TLS given once, to the registry client: the resolver's health checks and
/// the clients `ServiceClient::builder` makes reach `https://` instances
/// with it; without it the same instance is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_given_to_the_registry_client_is_used_for_the_instances_too() {
    let pki = Pki::new("once");
    let instance = https_instance(&pki.files, None).await;
    let registry = support::TestRegistry::start(None).await;
    let registration = Registration::new(Address::new(&instance).expect("address"));
    for tls in [Some(trusting(&pki.files.ca)), None] {
        let config = RegistryClientConfig {
            tls: tls.map(|t| t.config().expect("client TLS")),
            ..RegistryClientConfig::default()
        };
        let registry_client = RegistryClient::new([&registry.url], None, config).expect("client");
        registry_client
            .register(
                &"ratings".parse().expect("name"),
                &"ratings-1".parse().expect("id"),
                &registration,
            )
            .await
            .expect("registered");
        let trusted = registry_client.tls().is_some();
        let resolver = Resolver::new(registry_client, ResolverConfig::default());
        assert_eq!(
            resolver.tls().is_some(),
            trusted,
            "the resolver inherits it"
        );
        let client = ServiceClient::builder(&resolver, "ratings")
            .hedging(None)
            .build()
            .expect("client");
        let answer = client.get("/ratings/camera").await;
        if trusted {
            assert_eq!(
                answer.expect("reached with the registry's TLS").status(),
                200
            );
        } else {
            let text = refusal(&answer.expect_err("Mozilla's roots only"));
            assert!(text.contains("UnknownIssuer"), "{text}");
        }
    }
}

#[tokio::test]
async fn a_service_name_that_breaks_the_rule_is_refused_by_the_builder() {
    let registry = RegistryClient::from_list("http://127.0.0.1:9", None).expect("client");
    let resolver = Resolver::new(registry, ResolverConfig::default());
    let error = ServiceClient::builder(&resolver, "Not A Name")
        .build()
        .expect_err("bad name");
    assert!(error.to_string().contains("Not A Name"), "{error}");
}
