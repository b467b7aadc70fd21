//! Faults between real hosts: the registry, ratings instances and the
//! market each on a host of their own (network namespaces on a bridge,
//! `beacon_kit::netns`), partitions made with nftables, under a steady
//! market load. Needs root (to make namespaces); `make test` runs it as
//! root, as CI does, and it fails — not skips — without.

mod support;

use beacon_kit::{netns::TestNet, process::Service};
use serde_json::Value;
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};
use support::{binary, eventually, stores::TestDb, stores::SECRET};
use tokio::time::Instant;

/// What the load saw: every answer's status (or why there was none).
#[derive(Debug, Default)]
struct Seen {
    answers: u64,
    errors: Vec<String>,
}

/// The demo's topology, one process per host.
struct Topology {
    // Dropped last: the processes go first.
    _registry: Service,
    _ratings: Vec<Service>,
    market: Service,
    registry_url: String,
    _db: TestDb,
    net: TestNet,
}

impl Topology {
    fn start(instances: u16) -> Self {
        let mut hosts = vec!["registry".to_owned(), "market".to_owned()];
        hosts.extend((1..=instances).map(|n| format!("ratings-{n}")));
        let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let net = TestNet::new(&names).expect("a test network (needs root)");
        let registry_ip = net.host("registry").ip;
        let registry_url = format!("http://{registry_ip}:8400");
        let registry = Service::start_on(
            &net,
            net.host("registry"),
            &binary("beacon-registry"),
            &["--listen", &format!("{registry_ip}:8400")],
        )
        .expect("registry starts");
        let mut ratings = Vec::new();
        for n in 1..=instances {
            let host = net.host(&format!("ratings-{n}"));
            let (instance, ip) = (n.to_string(), host.ip.to_string());
            let args = [
                "--instance",
                &instance,
                "--host",
                &ip,
                "--port",
                "8001",
                "--registry",
                &registry_url,
                "--ttl-ms",
                "3000",
            ];
            ratings.push(
                Service::start_on(&net, host, &binary("beacon-ratings"), &args)
                    .expect("ratings starts"),
            );
        }
        let db = TestDb::sqlite();
        let market_host = net.host("market");
        let listen = format!("{}:5000", market_host.ip);
        let args = [
            "--listen",
            &listen,
            "--registry",
            &registry_url,
            "--db",
            &db.url,
            "--secret",
            SECRET,
        ];
        let market = Service::start_on(&net, market_host, &binary("beacon-market"), &args)
            .expect("market starts");
        Self {
            _registry: registry,
            _ratings: ratings,
            market,
            registry_url,
            _db: db,
            net,
        }
    }

    /// The market's panel: each instance's breaker, by id.
    async fn breaker(&self, http: &reqwest::Client, id: &str) -> Option<String> {
        let status: Value = http
            .get(format!("{}/api/status", self.market.url))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        status["instances"]
            .as_array()?
            .iter()
            .find(|i| i["id"] == id)
            .and_then(|i| i["breaker"].as_str().map(str::to_owned))
    }

    /// The instances the registry lists.
    async fn registered(&self, http: &reqwest::Client) -> Vec<String> {
        let listed: Value = match http
            .get(format!("{}/v1/services/ratings", self.registry_url))
            .send()
            .await
        {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        listed["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["id"].as_str().map(str::to_owned))
            .collect()
    }
}

/// Loads the market's `/api/things` from the test's side of the network
/// until `stop`: every answer must be a 200 with four ratings.
fn load(
    market: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("client");
        while !stop.load(Ordering::Relaxed) {
            let outcome = match http.get(format!("{market}/api/things")).send().await {
                Ok(response) if response.status().is_success() => {
                    let things: Value = response.json().await.unwrap_or_default();
                    match things.as_array().map(Vec::len) {
                        Some(4) => Ok(()),
                        other => Err(format!("{other:?} ratings")),
                    }
                }
                Ok(response) => Err(format!("status {}", response.status())),
                Err(e) => Err(e.to_string()),
            };
            {
                let mut seen = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                seen.answers += 1;
                if let Err(e) = outcome {
                    seen.errors.push(e);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_market_cut_off_from_one_instance_routes_around_it_and_takes_it_back_after_heal() {
    let topology = Topology::start(2);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("client");
    eventually(
        Duration::from_secs(15),
        "both instances in the market's view, closed",
        || async {
            let one = topology.breaker(&http, "ratings-1").await?;
            let two = topology.breaker(&http, "ratings-2").await?;
            (one == "closed" && two == "closed").then_some(())
        },
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let load = load(
        topology.market.url.clone(),
        Arc::clone(&stop),
        Arc::clone(&seen),
    );

    // The market can't reach ratings-2; the registry still hears it.
    topology.net.cut("market", "ratings-2").expect("partition");
    eventually(
        Duration::from_secs(10),
        "ratings-2's breaker to open",
        || async { (topology.breaker(&http, "ratings-2").await? == "open").then_some(()) },
    )
    .await;
    // It stays open while the partition lasts, though ratings-2 is alive
    // and registered (its lease is 3 s: this outlasts it).
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert_eq!(
            topology.breaker(&http, "ratings-2").await.as_deref(),
            Some("open"),
            "the breaker of an unreachable instance stays open"
        );
        assert!(
            topology
                .registered(&http)
                .await
                .contains(&"ratings-2".to_owned()),
            "the registry still sees ratings-2"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Healed: back in rotation within about a second.
    topology.net.heal().expect("heal");
    let healed = Instant::now();
    eventually(
        Duration::from_secs(5),
        "ratings-2's breaker to close",
        || async { (topology.breaker(&http, "ratings-2").await? == "closed").then_some(()) },
    )
    .await;
    let back = healed.elapsed();
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load task");
    let seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    println!(
        "calls {}, caller errors {}, back in rotation {back:?} after heal",
        seen.answers,
        seen.errors.len()
    );
    assert!(seen.answers >= 50, "the load ran: {}", seen.answers);
    assert!(seen.errors.is_empty(), "caller errors: {:?}", seen.errors);
    assert!(back < Duration::from_secs(3), "back after {back:?}");
}
