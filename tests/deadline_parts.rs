//! What a call tells its instance of its deadline (`beacon-deadline-ms`),
//! and how a deadline in force bounds it — on tokio's paused clock, so
//! every budget below is exact.

use beacon::{
    client::{ExchangeError, RequestBody, ResponseBody},
    deadline::{self, DEADLINE_HEADER},
    wire::Address,
    ClientConfig, ClientError, ResolverConfig, ServiceClient, ServiceView,
};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::time::Instant;
use tower::ServiceExt;

/// A client of one in-memory instance that answers with the
/// `beacon-deadline-ms` it was sent ("none" without one), counting calls.
fn client(
    config: ClientConfig,
) -> (
    ServiceClient<impl beacon::client::Transport>,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let transport = tower::service_fn(move |request: Request<RequestBody>| {
        counted.fetch_add(1, Ordering::SeqCst);
        let sent = request.headers().get(DEADLINE_HEADER).map_or_else(
            || "none".to_owned(),
            |v| v.to_str().unwrap_or("?").to_owned(),
        );
        async move { Ok::<_, ExchangeError>(Response::new(ResponseBody::from(Bytes::from(sent)))) }
    });
    let view = ServiceView::fixed(
        "ratings".parse().expect("name"),
        &[(
            "ratings-1".parse().expect("id"),
            Address::new("http://10.0.0.1:80").expect("address"),
        )],
        &ResolverConfig::default(),
    );
    (
        ServiceClient::with_transport(view, config, transport),
        calls,
    )
}

fn config() -> ClientConfig {
    ClientConfig {
        attempt_timeout: Duration::from_millis(100),
        deadline: Duration::from_secs(2),
        hedging: None,
        ..ClientConfig::default()
    }
}

async fn sent(client: &ServiceClient<impl beacon::client::Transport>) -> String {
    let response = client.get("/ratings/camera").await.expect("answered");
    String::from_utf8(response.into_body().to_vec()).expect("utf-8")
}

#[tokio::test(start_paused = true)]
async fn an_attempt_tells_the_instance_its_attempt_timeout() {
    let (client, _) = client(config());
    assert_eq!(sent(&client).await, "100");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_in_force_bounds_the_call_and_what_the_instance_is_told() {
    let (client, _) = client(config());
    let soon = Instant::now() + Duration::from_millis(40);
    assert_eq!(deadline::within(soon, sent(&client)).await, "40");
    // A later one than the call's own changes nothing.
    let later = Instant::now() + Duration::from_secs(60);
    assert_eq!(deadline::within(later, sent(&client)).await, "100");
    // Nested: the sooner wins.
    let nested = deadline::within(soon, deadline::within(later, sent(&client)));
    assert_eq!(nested.await, "40");
}

#[tokio::test(start_paused = true)]
async fn as_a_tower_service_too() {
    let (client, _) = client(config());
    let soon = Instant::now() + Duration::from_millis(30);
    let request = Request::get("/ratings/camera")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = deadline::within(soon, client.oneshot(request))
        .await
        .expect("answered");
    let body = response.into_body().bytes(1024).await.expect("body");
    assert_eq!(body, "30");
}

#[tokio::test(start_paused = true)]
async fn a_call_given_nothing_sends_nothing() {
    let (client, calls) = client(config());
    let now = Instant::now();
    let error = deadline::within(now, client.get("/ratings/camera"))
        .await
        .expect_err("no time left");
    assert!(
        matches!(error, ClientError::DeadlineExceeded { .. }),
        "{error}"
    );
    let request = Request::get("/ratings/camera")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let error = deadline::within(now, client.clone().oneshot(request))
        .await
        .expect_err("no time left");
    assert!(
        matches!(error, ClientError::DeadlineExceeded { .. }),
        "{error}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn sending_it_can_be_turned_off() {
    let (client, _) = client(ClientConfig {
        send_deadline: false,
        ..config()
    });
    assert_eq!(sent(&client).await, "none");
}
