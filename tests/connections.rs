//! Connections to instances, counted on the backend. HTTP/2: negotiated by
//! ALPN over TLS, or by prior knowledge (h2c) when configured, every
//! concurrent call to an instance multiplexed on one connection, against
//! HTTP/1.1 which needs many. HTTP/1.1: a connection is reused once its
//! answer is read (streamed ones too), not when the instance says it will
//! close it, and requests carry the instance's `Host`.

mod support;

use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderMap},
    routing::get,
    serve::Listener,
    Router,
};
use beacon::{net::tls::ClientTls, ClientConfig, ServiceClient};
use beacon_kit::tls::{server_config, ThrowawayPki, TlsListener};
use http_body_util::BodyExt;
use std::{
    io,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

/// A listener that counts the connections it hands out.
struct Counting<L> {
    inner: L,
    accepted: Arc<AtomicUsize>,
}

impl<L: Listener> Listener for Counting<L> {
    type Io = L::Io;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let connection = self.inner.accept().await;
        self.accepted.fetch_add(1, Ordering::SeqCst);
        connection
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Answers with the HTTP version it was asked in, a little late so that
/// concurrent calls overlap; with the `Host` it was sent; with a closing
/// connection; and with a 1 MiB body.
fn app() -> Router {
    Router::new()
        .route(
            "/version",
            get(|request: Request| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                format!("{:?}", request.version())
            }),
        )
        .route(
            "/host",
            get(|headers: HeaderMap| async move {
                let host = headers.get(header::HOST).cloned();
                host.map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
                    .unwrap_or_default()
            }),
        )
        .route(
            "/closing",
            get(|| async { ([(header::CONNECTION, "close")], "bye") }),
        )
        .route("/big", get(|| async { Body::from(vec![b'x'; 1 << 20]) }))
}

/// Starts a backend (TLS with `pki`); returns its URL and its connection count.
async fn backend(pki: Option<&ThrowawayPki>) -> (String, Arc<AtomicUsize>) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = tcp.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let url = match pki {
        None => {
            let listener = Counting {
                inner: tcp,
                accepted: counter,
            };
            tokio::spawn(async move { axum::serve(listener, app()).await });
            format!("http://127.0.0.1:{port}")
        }
        Some(pki) => {
            let config = server_config(&pki.server_cert, &pki.server_key, None).expect("tls");
            let tls = TlsListener::new(tcp, config).expect("listener");
            let listener = Counting {
                inner: tls,
                accepted: counter,
            };
            tokio::spawn(async move { axum::serve(listener, app()).await });
            format!("https://127.0.0.1:{port}")
        }
    };
    (url, accepted)
}

/// Two calls in turn, then 50 at once; the versions the backend saw. (The
/// calls in turn let the pool learn what the instance speaks: over TLS
/// that is known only once a handshake is done, and the connection joins
/// the pool as shareable a moment after its first answer, so a first burst
/// may still open a connection per call.)
async fn fifty_at_once(url: &str, config: ClientConfig) -> Vec<String> {
    let view = support::one_instance(url);
    let client = ServiceClient::for_view(
        view,
        ClientConfig {
            hedging: None,
            ..config
        },
    );
    for _ in 0..2 {
        client.get("/version").await.expect("a call in turn");
    }
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/version").await })
        })
        .collect();
    let mut versions = Vec::new();
    for call in calls {
        let answer = call.await.expect("task").expect("answer");
        versions.push(String::from_utf8_lossy(answer.body()).into_owned());
    }
    versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_http2_is_negotiated_and_multiplexes_every_call_on_one_connection() {
    let dir = std::env::temp_dir().join(format!("beacon-h2-{}", std::process::id()));
    let pki = ThrowawayPki::generate(&dir).expect("certificates");
    let (url, connections) = backend(Some(&pki)).await;
    let tls = ClientTls {
        ca: Some(pki.ca.clone()),
        identity: None,
    };
    let config = ClientConfig {
        tls: Some(tls.config().expect("client TLS")),
        ..ClientConfig::default()
    };
    let versions = fifty_at_once(&url, config).await;
    assert!(versions.iter().all(|v| v == "HTTP/2.0"), "{versions:?}");
    let opened = connections.load(Ordering::SeqCst);
    assert!(opened <= 2, "{opened} connections for 52 calls");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_prior_knowledge_plain_http2_multiplexes_and_http1_needs_many_connections() {
    let (url, connections) = backend(None).await;
    let h2c = ClientConfig {
        http2_prior_knowledge: true,
        ..ClientConfig::default()
    };
    let versions = fifty_at_once(&url, h2c).await;
    assert!(versions.iter().all(|v| v == "HTTP/2.0"), "{versions:?}");
    let opened = connections.load(Ordering::SeqCst);
    assert!(opened <= 2, "{opened} connections for 52 calls");

    let (url, connections) = backend(None).await;
    let versions = fifty_at_once(&url, ClientConfig::default()).await;
    assert!(versions.iter().all(|v| v == "HTTP/1.1"), "{versions:?}");
    let opened = connections.load(Ordering::SeqCst);
    assert!(
        opened >= 10,
        "HTTP/1.1 holds one call per connection: {opened} for 50 at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_calls_in_turn_share_one_connection_and_name_the_instance_as_host() {
    let (url, connections) = backend(None).await;
    // No hedges: a hedge of a call slowed by a loaded machine would open a
    // connection of its own, which is not what this counts.
    let config = ClientConfig {
        hedging: None,
        ..ClientConfig::default()
    };
    let client = ServiceClient::for_view(support::one_instance(&url), config);
    let port = url.rsplit(':').next().expect("port");
    for _ in 0..20 {
        let answer = client.get("/host").await.expect("answer");
        assert_eq!(
            answer.body().as_ref(),
            format!("127.0.0.1:{port}").as_bytes()
        );
    }
    // A call may find the connection still finishing its last answer (its
    // task runs on the other thread) and open another: on a loaded CI
    // machine that happened twice in 20 calls (3 connections). Never one
    // per call: at most one in five.
    let opened = connections.load(Ordering::SeqCst);
    assert!(opened <= 4, "{opened} connections for 20 calls in turn");

    // A caller's own `Host` is sent as it is.
    let request = http::Request::get("/host")
        .header(header::HOST, "ratings.example")
        .body(bytes::Bytes::new())
        .expect("request");
    let answer = client.send(request).await.expect("answer");
    assert_eq!(answer.body().as_ref(), b"ratings.example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_instance_closes_is_not_reused_and_no_call_fails() {
    let (url, connections) = backend(None).await;
    let client = ServiceClient::for_view(support::one_instance(&url), ClientConfig::default());
    for _ in 0..5 {
        let answer = client.get("/closing").await.expect("answer");
        assert_eq!(answer.body().as_ref(), b"bye");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        5,
        "a new connection per call"
    );
    assert_eq!(client.snapshot().instances[0].failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_goes_back_to_the_pool_once_a_streamed_answer_is_read() {
    let (url, connections) = backend(None).await;
    let client = ServiceClient::for_view(support::one_instance(&url), ClientConfig::default());
    let streamed = |client: ServiceClient| async move {
        let request = http::Request::get("/big")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request");
        let answer = client.stream(request).await.expect("answer");
        let body = answer.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body.len(), 1 << 20);
    };
    for _ in 0..10 {
        streamed(client.clone()).await;
    }
    // The connection is ready again once its body is read: a call right
    // after may find it still finishing and open another, not one per call.
    let opened = connections.load(Ordering::SeqCst);
    assert!(opened <= 3, "{opened} connections for 10 calls in turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_prior_knowledge_a_cold_burst_opens_one_connection() {
    let (url, connections) = backend(None).await;
    let client = ServiceClient::for_view(
        support::one_instance(&url),
        ClientConfig {
            http2_prior_knowledge: true,
            hedging: None,
            ..ClientConfig::default()
        },
    );
    // Fifty at once before any connection exists: one connects, the others
    // wait for its connection instead of opening one each.
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/version").await })
        })
        .collect();
    for call in calls {
        let answer = call.await.expect("task").expect("answer");
        assert_eq!(answer.body().as_ref(), b"HTTP/2.0");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}
