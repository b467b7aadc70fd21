//! The per-instance cap on calls in flight (`ClientConfig::max_in_flight`)
//! on tokio's paused clock, against in-memory instances that record how
//! many requests they hold at once.

use beacon::{
    client::{ExchangeError, RequestBody, ResponseBody},
    wire::{Address, InstanceId},
    Balancing, ClientConfig, ClientError, ResolverConfig, ServiceClient, ServiceView,
};
use bytes::Bytes;
use futures_util::future::join_all;
use http::{Request, Response};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;

/// Requests each in-memory instance holds now, and the most it ever held.
#[derive(Clone, Default)]
struct Held(Arc<Mutex<HashMap<String, (u32, u32)>>>);

impl Held {
    fn most(&self, instance: usize) -> u32 {
        let held = self.0.lock().expect("lock");
        held.get(&authority(instance)).map_or(0, |&(_, most)| most)
    }

    fn enter(&self, at: &str) {
        let mut held = self.0.lock().expect("lock");
        let (now, most) = held.entry(at.to_owned()).or_default();
        *now += 1;
        *most = (*most).max(*now);
    }

    fn leave(&self, at: &str) {
        if let Some((now, _)) = self.0.lock().expect("lock").get_mut(at) {
            *now -= 1;
        }
    }
}

/// Leaves when dropped: a request the caller gave up on leaves too.
struct Holding(Held, String);

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.leave(&self.1);
    }
}

fn authority(instance: usize) -> String {
    format!("10.0.0.{}:80", instance + 1)
}

/// A client of `delays.len()` in-memory instances, in turn, at most
/// `limit` calls in flight to each; instance `i` answers after `delays[i]`.
fn client(
    delays: &[Duration],
    limit: u32,
) -> (ServiceClient<impl beacon::client::Transport>, Held) {
    let held = Held::default();
    let by_authority: HashMap<String, Duration> = delays
        .iter()
        .enumerate()
        .map(|(i, d)| (authority(i), *d))
        .collect();
    let seen = held.clone();
    let transport = tower::service_fn(move |request: Request<RequestBody>| {
        let at = request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let delay = by_authority.get(&at).copied().unwrap_or_default();
        seen.enter(&at);
        let holding = Holding(seen.clone(), at);
        async move {
            tokio::time::sleep(delay).await;
            drop(holding);
            Ok::<_, ExchangeError>(Response::new(ResponseBody::from(Bytes::from("ok"))))
        }
    });
    let listed: Vec<(InstanceId, Address)> = (0..delays.len())
        .map(|i| {
            let id = format!("ratings-{}", i + 1).parse().expect("id");
            let address = Address::new(&format!("http://{}", authority(i))).expect("address");
            (id, address)
        })
        .collect();
    let view = ServiceView::fixed(
        "ratings".parse().expect("name"),
        &listed,
        &ResolverConfig::default(),
    );
    let config = ClientConfig {
        attempt_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(5),
        balancing: Balancing::RoundRobin,
        hedging: None,
        max_in_flight: Some(limit),
        ..ClientConfig::default()
    };
    (ServiceClient::with_transport(view, config, transport), held)
}

/// Ten calls at once; each result with when it came.
async fn ten_at_once(
    client: &ServiceClient<impl beacon::client::Transport>,
) -> Vec<(Result<(), ClientError>, Duration)> {
    let started = Instant::now();
    join_all((0..10).map(|_| async {
        let result = client.get("/ratings/camera").await.map(|_| ());
        (result, started.elapsed())
    }))
    .await
}

#[tokio::test(start_paused = true)]
async fn a_slow_instance_never_holds_more_than_its_cap_and_the_rest_fail_fast() {
    let (client, held) = client(&[Duration::from_millis(500)], 2);
    let results = ten_at_once(&client).await;
    assert_eq!(held.most(0), 2);
    let answered: Vec<_> = results.iter().filter(|(r, _)| r.is_ok()).collect();
    assert_eq!(answered.len(), 2);
    for (result, after) in results.iter().filter(|(r, _)| r.is_err()) {
        let error = result.as_ref().expect_err("refused");
        assert!(
            matches!(error, ClientError::AllAtCapacity { limit: 2, .. }),
            "{error}"
        );
        assert_eq!(*after, Duration::ZERO, "refused at once, not queued");
    }
    // The places are given back: the next calls are served.
    let results = ten_at_once(&client).await;
    assert_eq!(results.iter().filter(|(r, _)| r.is_ok()).count(), 2);
}

#[tokio::test(start_paused = true)]
async fn past_its_cap_calls_go_to_the_other_instances() {
    let slow = Duration::from_millis(500);
    let (client, held) = client(&[slow, Duration::ZERO, Duration::ZERO], 2);
    let results = ten_at_once(&client).await;
    for (result, _) in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!(held.most(0), 2, "the slow instance held at most its cap");
    let snapshot = client.snapshot();
    let served: Vec<u64> = snapshot.instances.iter().map(|i| i.successes).collect();
    assert_eq!(served.iter().sum::<u64>(), 10);
    assert_eq!(served[0], 2, "{served:?}");
    assert!(snapshot.instances.iter().all(|i| i.in_flight == 0));
}

/// Callers that loop on a client whose every instance is at its cap get
/// `AllAtCapacity` at once, ready without touching anything of tokio's;
/// on one thread, with the instance in the same runtime, they would never
/// let the call in flight (nor the instance) run. The client counts such
/// answers against the task's budget, so the loop yields now and then and
/// the calls in flight are answered. Real time: a paused clock never
/// advances while tasks keep running.
#[tokio::test(flavor = "current_thread")]
async fn callers_looping_on_refusals_let_the_call_in_flight_finish() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let app = axum::Router::new().route(
        "/ratings/camera",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            "ok"
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let address = Address::new(&format!("http://127.0.0.1:{port}")).expect("address");
    let view = ServiceView::fixed(
        "ratings".parse().expect("name"),
        &[("ratings-1".parse().expect("id"), address)],
        &ResolverConfig::default(),
    );
    let client = ServiceClient::for_view(
        view,
        ClientConfig {
            max_in_flight: Some(1),
            hedging: None,
            ..ClientConfig::default()
        },
    );
    let until = Instant::now() + Duration::from_millis(500);
    let callers = (0..3).map(|_| {
        let client = client.clone();
        async move {
            let (mut answered, mut refused) = (0u32, 0u32);
            while Instant::now() < until {
                match client.get("/ratings/camera").await {
                    Ok(_) => answered += 1,
                    Err(ClientError::AllAtCapacity { .. }) => refused += 1,
                    Err(other) => panic!("unexpected: {other}"),
                }
            }
            (answered, refused)
        }
    });
    let results = join_all(callers.map(tokio::spawn)).await;
    let answered: u32 = results
        .iter()
        .map(|r| r.as_ref().expect("a caller").0)
        .sum();
    // One at a time, 5 ms each, for half a second: tens of answers. A
    // loop that never yields lets about one through.
    assert!(answered >= 10, "{results:?}");
}
