//! Streaming bodies through a `ServiceClient`, against real HTTP servers on
//! 127.0.0.1: a 100 MiB answer streams in bounded memory; a request body
//! within the replay limit is retried on another instance, one over it is
//! not and the error says so; a call that can't be sent twice streams its
//! body at once (a conversation, as gRPC's streams are, works), and a body
//! that fails is the caller's error, not the instance's; the attempt
//! timeout covers a streamed answer's headers, the body timeout its body;
//! trailers come through.

mod support;

use axum::{
    body::Body,
    extract::{Query, State},
    http::StatusCode,
    routing::{get, post},
    Router,
};
use beacon::{
    client::{BodyTimeout, Idempotent, ResponseBody},
    Balancing, ClientConfig, ClientError, ServedBy, ServiceClient,
};
use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

const MIB: usize = 1024 * 1024;
static CHUNK: [u8; 64 * 1024] = [7; 64 * 1024];

/// One test instance: what it was sent, and whether it fails.
#[derive(Clone, Default)]
struct Instance {
    requests: Arc<AtomicUsize>,
    bytes_received: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

#[derive(serde::Deserialize)]
struct Size {
    mib: usize,
}

/// Reads the whole upload, then answers 503 if failing, else the number
/// of bytes it read.
async fn upload(State(me): State<Instance>, body: Body) -> (StatusCode, String) {
    me.requests.fetch_add(1, Ordering::SeqCst);
    let mut body = body.into_data_stream();
    let mut read = 0;
    while let Some(Ok(chunk)) = futures_util::StreamExt::next(&mut body).await {
        read += chunk.len();
    }
    me.bytes_received.fetch_add(read, Ordering::SeqCst);
    match me.failing.load(Ordering::SeqCst) {
        true => (StatusCode::SERVICE_UNAVAILABLE, "failing".into()),
        false => (StatusCode::OK, read.to_string()),
    }
}

/// `mib` MiB in 64 KiB chunks, made as they are sent.
async fn big(Query(size): Query<Size>) -> Body {
    let chunks = size.mib * MIB / CHUNK.len();
    let stream = futures_util::stream::iter(
        (0..chunks).map(|_| Ok::<_, Infallible>(Bytes::from_static(&CHUNK))),
    );
    Body::from_stream(stream)
}

/// Five chunks 100 ms apart, then trailers.
async fn trickle() -> Body {
    let frames = futures_util::stream::unfold(0, |sent| async move {
        match sent {
            0..5 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"tick "))),
                    sent + 1,
                ))
            }
            5 => {
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", "0".parse().expect("value"));
                Some((Ok(Frame::trailers(trailers)), sent + 1))
            }
            _ => None,
        }
    });
    Body::new(StreamBody::new(frames))
}

/// Headers, then nothing.
async fn stall() -> Body {
    Body::from_stream(futures_util::stream::pending::<Result<Bytes, Infallible>>())
}

async fn start(instance: &Instance) -> String {
    let app = Router::new()
        .route("/upload", post(upload).put(upload))
        .route("/big", get(big))
        .route("/trickle", get(trickle))
        .route("/stall", get(stall))
        .route("/echo", post(|body: Body| async move { body }))
        .with_state(instance.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// `total` bytes in `chunk`-byte frames, as a stream (size unknown ahead).
fn upload_body(
    total: usize,
    chunk: usize,
) -> impl http_body::Body<Data = Bytes, Error = Infallible> + Send {
    let frames: Vec<_> = (0..total.div_ceil(chunk))
        .map(|i| {
            Ok(Frame::data(Bytes::from(vec![
                1u8;
                chunk.min(total - i * chunk)
            ])))
        })
        .collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

/// The process's resident memory now, from /proc.
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn config() -> ClientConfig {
    ClientConfig {
        balancing: Balancing::RoundRobin,
        hedging: None,
        ..ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_answer_streams_in_bounded_memory() {
    let url = start(&Instance::default()).await;
    let client = ServiceClient::for_view(support::one_instance(&url), config());
    let request = Request::get("/big?mib=100")
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("request");
    let before = resident_bytes();
    let mut body = client.stream(request).await.expect("headers").into_body();
    let (mut received, mut peak) = (0, before);
    while let Some(frame) = body.frame().await {
        received += frame.expect("frame").into_data().map_or(0, |d| d.len());
        peak = peak.max(resident_bytes());
    }
    assert_eq!(received, 100 * MIB);
    let grew = peak.saturating_sub(before);
    assert!(
        grew < 32 * MIB,
        "resident memory grew by {} MiB while streaming 100 MiB",
        grew / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_within_the_replay_limit_is_retried_on_another_instance() {
    let (failing, healthy) = (Instance::default(), Instance::default());
    failing.failing.store(true, Ordering::SeqCst);
    let urls = [start(&failing).await, start(&healthy).await];
    let client = ServiceClient::for_view(support::instances(&[&urls[0], &urls[1]]), config());
    let mut attempts = Vec::new();
    for _ in 0..4 {
        // A POST the caller marks idempotent, with a 30 kB body in 3 frames.
        let mut request = Request::post("/upload")
            .body(upload_body(30_000, 10_000))
            .expect("request");
        request.extensions_mut().insert(Idempotent);
        let response = client.stream(request).await.expect("answered");
        attempts.push(
            response
                .extensions()
                .get::<ServedBy>()
                .expect("served by")
                .attempts,
        );
        let body = response.into_body().bytes(1024).await.expect("body");
        assert_eq!(&body[..], b"30000", "the healthy instance got it all");
    }
    assert!(failing.requests.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        failing.bytes_received.load(Ordering::SeqCst),
        30_000 * failing.requests.load(Ordering::SeqCst)
    );
    assert!(attempts.contains(&2), "some call was retried: {attempts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_replay_limit_goes_once_and_the_error_says_why() {
    let (a, b) = (Instance::default(), Instance::default());
    a.failing.store(true, Ordering::SeqCst);
    b.failing.store(true, Ordering::SeqCst);
    let urls = [start(&a).await, start(&b).await];
    let config = ClientConfig {
        replay_limit: 16 * 1024,
        ..config()
    };
    let client = ServiceClient::for_view(support::instances(&[&urls[0], &urls[1]]), config);
    let request = Request::put("/upload")
        .body(upload_body(100_000, 10_000))
        .expect("request");
    let error = client.stream(request).await.expect_err("both fail");
    assert!(
        matches!(error, ClientError::NotRetried { limit: 16384, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("not retried: the request body is over the 16384-byte replay limit"),
        "{error}"
    );
    let requests = a.requests.load(Ordering::SeqCst) + b.requests.load(Ordering::SeqCst);
    assert_eq!(requests, 1, "sent once");
    let received =
        a.bytes_received.load(Ordering::SeqCst) + b.bytes_received.load(Ordering::SeqCst);
    assert_eq!(
        received, 100_000,
        "the part read to find it too long was sent too"
    );

    // A POST not marked idempotent is not retried either, whatever its size.
    let request = Request::post("/upload")
        .body(upload_body(10, 10))
        .expect("request");
    let error = client.stream(request).await.expect_err("fails");
    assert!(
        matches!(error, ClientError::ServerError { .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attempt_timeout_covers_a_streamed_answers_headers_and_the_body_timeout_its_body() {
    let url = start(&Instance::default()).await;
    let config = ClientConfig {
        attempt_timeout: Duration::from_millis(300),
        body_timeout: Some(Duration::from_secs(3)),
        ..config()
    };
    // Over HTTP/2 (h2c), as gRPC goes.
    let h2 = ClientConfig {
        http2_prior_knowledge: true,
        ..config.clone()
    };
    let client = ServiceClient::for_view(support::one_instance(&url), h2);
    let empty = || http_body_util::Empty::<Bytes>::new();

    // 500 ms of body, past the attempt timeout, within the body timeout; the
    // trailers come through (gRPC's status travels in them).
    let answer = client
        .stream(Request::get("/trickle").body(empty()).expect("request"))
        .await
        .expect("headers");
    let collected = answer.into_body().collect().await.expect("whole body");
    assert_eq!(
        collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .expect("trailers"),
        "0"
    );
    assert_eq!(&collected.to_bytes()[..], b"tick tick tick tick tick ");

    // `send` reads bodies whole within the attempt timeout: the same answer is too slow.
    let error = client
        .get("/trickle")
        .await
        .expect_err("too slow for an attempt");
    assert!(matches!(error, ClientError::Timeout { .. }), "{error:?}");

    // A body that stalls ends with the body timeout's error.
    let client = ServiceClient::for_view(
        support::one_instance(&url),
        ClientConfig {
            body_timeout: Some(Duration::from_millis(200)),
            ..config
        },
    );
    let answer: http::Response<ResponseBody> = client
        .stream(Request::get("/stall").body(empty()).expect("request"))
        .await
        .expect("headers");
    let error = answer.into_body().collect().await.expect_err("stalled");
    assert!(error.is::<BodyTimeout>(), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_cannot_be_sent_twice_streams_its_body_at_once() {
    let url = start(&Instance::default()).await;
    let client = ServiceClient::for_view(
        support::one_instance(&url),
        ClientConfig {
            attempt_timeout: Duration::from_millis(300),
            http2_prior_knowledge: true,
            ..config()
        },
    );
    // A conversation: the second message goes only once the first came back,
    // so reading the body ahead would wait forever.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    }));
    tx.send(Bytes::from_static(b"ping "))
        .await
        .expect("first message");
    let call = tokio::time::timeout(
        Duration::from_secs(5),
        client.stream(Request::post("/echo").body(body).expect("request")),
    );
    let mut answer = call
        .await
        .expect("headers before the body ended")
        .expect("answered")
        .into_body();
    let first = answer
        .frame()
        .await
        .expect("a frame")
        .expect("data")
        .into_data()
        .expect("data");
    assert_eq!(&first[..], b"ping ");
    // Slower than the attempt timeout, while the caller is still sending.
    tokio::time::sleep(Duration::from_millis(400)).await;
    tx.send(Bytes::from_static(b"pong"))
        .await
        .expect("second message");
    drop(tx);
    let rest = answer.collect().await.expect("the rest").to_bytes();
    assert_eq!(&rest[..], b"pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_fails_is_the_callers_error_not_the_instances() {
    let instance = Instance::default();
    let url = start(&instance).await;
    let client = ServiceClient::for_view(support::one_instance(&url), config());
    for _ in 0..6 {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from(vec![1u8; 100_000]))),
            Err(std::io::Error::other("the disk went away")),
        ];
        let body = StreamBody::new(futures_util::stream::iter(frames));
        let error = client
            .stream(Request::put("/upload").body(body).expect("request"))
            .await
            .expect_err("the body failed");
        assert!(
            matches!(error, ClientError::RequestBody { .. }),
            "{error:?}"
        );
    }
    let instance = &client.snapshot().instances[0];
    assert_eq!(instance.failures, 0, "{instance:?}");
    assert_eq!(instance.breaker, beacon::BreakerState::Closed);
}
