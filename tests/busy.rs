//! Busy is not broken, on tokio's paused clock against in-memory
//! instances: a 503 with `Retry-After` (an instance that shed the call, as
//! `OverloadLayer` answers) is tried elsewhere and leaves the breaker
//! alone; a 503 without it is a failure; and once sheds number half the
//! calls, busy calls are not retried at all.

mod support;

use beacon::{
    client::{ExchangeError, RequestBody, ResponseBody},
    BreakerState, ClientConfig, ClientError, ServiceClient,
};
use bytes::Bytes;
use http::{header::RETRY_AFTER, Request, Response, StatusCode};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

/// How an in-memory instance answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// 200.
    Ok,
    /// 503 with `Retry-After: 1`: shed, full.
    Busy,
    /// 503 without it: broken.
    Broken,
}

/// Instances by authority, each answering as set; every attempt counted.
#[derive(Clone, Default)]
struct Instances {
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    attempts: Arc<AtomicUsize>,
}

impl Instances {
    fn set(&self, instance: usize, answer: Answer) {
        let mut answers = self.answers.lock().expect("lock");
        answers.insert(authority(instance), answer);
    }

    fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }
}

fn authority(instance: usize) -> String {
    format!("10.0.0.{}:80", instance + 1)
}

/// A client of `count` in-memory instances, answering as `instances` says
/// after 1 ms, with three attempts a call and no hedging.
fn client(count: usize, instances: &Instances) -> ServiceClient<impl beacon::client::Transport> {
    let seen = instances.clone();
    let transport = tower::service_fn(move |request: Request<RequestBody>| {
        let at = support::authority_of(&request);
        seen.attempts.fetch_add(1, Ordering::SeqCst);
        let answer = seen
            .answers
            .lock()
            .expect("lock")
            .get(&at)
            .copied()
            .unwrap_or(Answer::Ok);
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let mut response = Response::new(ResponseBody::from(Bytes::from("{}")));
            if answer != Answer::Ok {
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            if answer == Answer::Busy {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, http::HeaderValue::from_static("1"));
            }
            Ok::<_, ExchangeError>(response)
        }
    });
    let urls: Vec<String> = (0..count)
        .map(|i| format!("http://{}", authority(i)))
        .collect();
    let view = support::instances(&urls.iter().map(String::as_str).collect::<Vec<_>>());
    let config = ClientConfig {
        hedging: None,
        ..ClientConfig::default()
    };
    ServiceClient::with_transport(view, config, transport)
}

/// Sixty calls to three instances, the first answering `first`'s way;
/// every call answered (by the others). The client, to look at.
async fn sixty_calls_past(first: Answer) -> ServiceClient<impl beacon::client::Transport> {
    let instances = Instances::default();
    instances.set(0, first);
    let client = client(3, &instances);
    for _ in 0..60 {
        client
            .get("/ratings/camera")
            .await
            .expect("answered elsewhere");
    }
    client
}

#[tokio::test(start_paused = true)]
async fn a_busy_instance_is_passed_over_and_its_breaker_left_closed() {
    let client = sixty_calls_past(Answer::Busy).await;
    let busy = &client.snapshot().instances[0];
    assert_eq!(busy.breaker, BreakerState::Closed, "{busy:?}");
    assert_eq!(busy.failures, 0, "{busy:?}");
    assert!(
        client.retries().retries > 0,
        "the busy calls went elsewhere"
    );
}

#[tokio::test(start_paused = true)]
async fn a_503_without_retry_after_is_a_failure() {
    let client = sixty_calls_past(Answer::Broken).await;
    let broken = &client.snapshot().instances[0];
    assert!(broken.failures > 0, "{broken:?}");
    assert_ne!(broken.breaker, BreakerState::Closed, "{broken:?}");
}

#[tokio::test(start_paused = true)]
async fn when_every_instance_is_busy_busy_calls_are_not_retried() {
    let instances = Instances::default();
    for instance in 0..3 {
        instances.set(instance, Answer::Busy);
    }
    let client = client(3, &instances);
    let calls = 200;
    for _ in 0..calls {
        let answer = client.get("/ratings/camera").await;
        assert!(
            matches!(answer, Err(ClientError::Overloaded { .. })),
            "{answer:?}"
        );
    }
    let counts = client.retries();
    // The first calls were retried (sheds under half the calls), then
    // none: well under the budget's fifth of the calls plus its floor.
    assert!(counts.held_back > 0, "{counts:?}");
    assert!(
        instances.attempts() < calls + calls / 20 + 10,
        "{} attempts for {calls} calls ({counts:?})",
        instances.attempts()
    );
    for instance in client.snapshot().instances {
        assert_eq!(instance.breaker, BreakerState::Closed, "{instance:?}");
    }
}
