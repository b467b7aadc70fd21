//! Zone-aware routing (`ClientConfig::zone`) on tokio's paused clock:
//! three in-memory instances in zone a, three in zone b, and a caller in a
//! (or in c, where there are none).

use beacon::{
    client::{ExchangeError, RequestBody, ResponseBody},
    wire::{Address, InstanceId},
    Balancing, BreakerConfig, BreakerState, ClientConfig, ResolverConfig, ServiceClient,
    ServiceView,
};
use bytes::Bytes;
use http::{Request, Response};
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

/// Instances 0–2 are in zone a, 3–5 in zone b.
const ZONES: [&str; 6] = ["a", "a", "a", "b", "b", "b"];

fn authority(instance: usize) -> String {
    format!("10.0.0.{}:80", instance + 1)
}

/// In-memory instances: the ones in `down` refuse connections; each
/// answer says which instance gave it.
#[derive(Clone, Default)]
struct Instances {
    down: Arc<Mutex<HashSet<String>>>,
}

impl Instances {
    fn take_down(&self, instance: usize) {
        self.down.lock().expect("lock").insert(authority(instance));
    }

    fn client(
        &self,
        zone: &str,
        balancing: Balancing,
    ) -> ServiceClient<impl beacon::client::Transport> {
        let down = Arc::clone(&self.down);
        let transport = tower::service_fn(move |request: Request<RequestBody>| {
            let at = request
                .uri()
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let refused = down.lock().expect("lock").contains(&at);
            async move {
                if refused {
                    return Err(ExchangeError::Connect(Arc::new(std::io::Error::from(
                        std::io::ErrorKind::ConnectionRefused,
                    ))));
                }
                Ok(Response::new(ResponseBody::from(Bytes::from(at))))
            }
        });
        let listed: Vec<(InstanceId, Address, Option<String>)> = ZONES
            .iter()
            .enumerate()
            .map(|(i, zone)| {
                let id = format!("ratings-{}", i + 1).parse().expect("id");
                let address = Address::new(&format!("http://{}", authority(i))).expect("address");
                (id, address, Some((*zone).to_owned()))
            })
            .collect();
        let config = ResolverConfig {
            // One refusal opens a breaker, for a minute: the tests below
            // run well within it.
            breaker: BreakerConfig {
                failure_threshold: 1,
                open_for: Duration::from_secs(60),
                max_open_for: Duration::from_secs(60),
                jitter: 0.0,
                failure_rate: None,
                max_ejected: 1.0,
            },
            ..ResolverConfig::default()
        };
        let view = ServiceView::fixed_in_zones("ratings".parse().expect("name"), &listed, &config);
        let client_config = ClientConfig {
            zone: Some(zone.into()),
            balancing,
            hedging: None,
            ..ClientConfig::default()
        };
        ServiceClient::with_transport(view, client_config, transport)
    }
}

/// Makes `calls` calls; every one must succeed. Returns the share served
/// in zone a.
async fn local_share(client: &ServiceClient<impl beacon::client::Transport>, calls: u32) -> f64 {
    let zone_of: HashMap<String, &str> = ZONES
        .iter()
        .enumerate()
        .map(|(i, zone)| (authority(i), *zone))
        .collect();
    let mut local = 0;
    for _ in 0..calls {
        let response = client
            .get("/ratings/camera")
            .await
            .expect("no caller error");
        let at = String::from_utf8(response.into_body().to_vec()).expect("utf-8");
        if zone_of[&at] == "a" {
            local += 1;
        }
    }
    f64::from(local) / f64::from(calls)
}

#[tokio::test(start_paused = true)]
async fn a_healthy_zone_keeps_its_calls() {
    for balancing in [Balancing::LeastLoaded, Balancing::RoundRobin] {
        let client = Instances::default().client("a", balancing);
        let share = local_share(&client, 300).await;
        assert!(share >= 0.95, "{balancing:?}: {share}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_degraded_zone_spills_over_in_proportion() {
    let instances = Instances::default();
    let client = instances.client("a", Balancing::LeastLoaded);
    instances.take_down(0);
    // The first calls find it down (retried elsewhere); then its breaker is open.
    local_share(&client, 20).await;
    // Two of three healthy: about two thirds stay in zone a.
    let share = local_share(&client, 600).await;
    assert!((0.55..=0.78).contains(&share), "{share}");
}

#[tokio::test(start_paused = true)]
async fn a_zone_that_is_down_sends_everything_elsewhere() {
    let instances = Instances::default();
    let client = instances.client("a", Balancing::LeastLoaded);
    for instance in 0..3 {
        instances.take_down(instance);
    }
    // Until their breakers open, calls find dead instances in a (and a
    // call whose three attempts all do fails: the same zone-blind); each
    // failure opens a breaker.
    for _ in 0..30 {
        let _ = client.get("/ratings/camera").await;
    }
    for i in 0..3 {
        let state = client.snapshot().instances[i].breaker;
        assert_eq!(state, BreakerState::Open, "ratings-{}", i + 1);
    }
    assert_eq!(local_share(&client, 300).await, 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_caller_in_a_zone_without_instances_uses_every_zone() {
    let client = Instances::default().client("c", Balancing::RoundRobin);
    assert_eq!(local_share(&client, 60).await, 0.5);
}
