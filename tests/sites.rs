//! Several sites, on tokio's paused clock against in-memory instances: a
//! client prefers its own site's instances, fails over to another site's
//! when its own can't take a call (with no failed call), spills over in
//! proportion when its own is degraded, picks the nearest remote site,
//! and comes home when its site heals.

mod support;

use beacon::{
    client::{ExchangeError, RemoteSite, RequestBody, ResponseBody},
    BreakerState, ServiceClient, ServiceView,
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

/// One in-memory instance: whether it is broken (answers 500), how late
/// it answers, and the calls it answered.
type Instance = (bool, Duration, usize);

/// Every in-memory instance, by authority.
#[derive(Clone, Default)]
struct Fleet(Arc<Mutex<HashMap<String, Instance>>>);

impl Fleet {
    fn add(&self, authority: &str, delay: Duration) {
        let mut fleet = self.0.lock().expect("lock");
        fleet.insert(authority.to_owned(), (false, delay, 0));
    }

    fn set_broken(&self, authority: &str, broken: bool) {
        if let Some(instance) = self.0.lock().expect("lock").get_mut(authority) {
            instance.0 = broken;
        }
    }

    /// Calls answered well by instances whose authority starts with
    /// `prefix`, since the last look.
    fn take_answered(&self, prefix: &str) -> usize {
        let mut fleet = self.0.lock().expect("lock");
        fleet
            .iter_mut()
            .filter(|(authority, _)| authority.starts_with(prefix))
            .map(|(_, instance)| std::mem::take(&mut instance.2))
            .sum()
    }
}

/// Site `site`'s view: `count` instances at `10.0.<site>.<n>:80`
/// (`ratings-1`…: each site numbers its own), answering after `delay`.
fn site(fleet: &Fleet, site: u8, count: u8, delay: Duration) -> Arc<ServiceView> {
    let urls: Vec<String> = (1..=count)
        .map(|n| {
            let authority = format!("10.0.{site}.{n}:80");
            fleet.add(&authority, delay);
            format!("http://{authority}")
        })
        .collect();
    support::instances(&urls.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A client of site 1 (`own`), failing over to `remote` sites.
fn client(
    fleet: &Fleet,
    own: Arc<ServiceView>,
    remote: Vec<RemoteSite>,
) -> ServiceClient<impl beacon::client::Transport> {
    let seen = fleet.clone();
    let transport = tower::service_fn(move |request: Request<RequestBody>| {
        let at = support::authority_of(&request);
        let fleet = seen.clone();
        async move {
            let (broken, delay) = fleet
                .0
                .lock()
                .expect("lock")
                .get(&at)
                .map_or((true, Duration::ZERO), |i| (i.0, i.1));
            tokio::time::sleep(delay).await;
            let mut response = Response::new(ResponseBody::from(Bytes::from("{}")));
            if broken {
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            } else if let Some(instance) = fleet.0.lock().expect("lock").get_mut(&at) {
                instance.2 += 1;
            }
            Ok::<_, ExchangeError>(response)
        }
    });
    let mut builder = ServiceClient::builder_for_view(own)
        .site("one")
        .hedging(None);
    for site in remote {
        builder = builder.remote_site_view(site);
    }
    builder.build_with(transport).expect("client")
}

/// `count` calls one after another; the failed ones.
async fn calls(client: &ServiceClient<impl beacon::client::Transport>, count: usize) -> usize {
    let mut failed = 0;
    for _ in 0..count {
        if client.get("/ratings/camera").await.is_err() {
            failed += 1;
        }
    }
    failed
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn a_healthy_own_site_takes_every_call() {
    let fleet = Fleet::default();
    let own = site(&fleet, 1, 3, MS);
    let remote = RemoteSite::new("two", site(&fleet, 2, 3, MS));
    let client = client(&fleet, own, vec![remote]);
    assert_eq!(calls(&client, 300).await, 0);
    assert_eq!(fleet.take_answered("10.0.2."), 0, "nothing crossed");
    assert_eq!(fleet.take_answered("10.0.1."), 300);
    // The snapshot lists both sites' instances, each with its site.
    let snapshot = client.snapshot();
    let sites: Vec<_> = snapshot.instances.iter().map(|i| i.dc.as_deref()).collect();
    assert_eq!(
        sites,
        [Some("one"); 3]
            .into_iter()
            .chain([Some("two"); 3])
            .collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn a_site_down_fails_over_without_a_failed_call_and_comes_back_when_it_heals() {
    let fleet = Fleet::default();
    let own = site(&fleet, 1, 2, MS);
    let remote = RemoteSite::new("two", site(&fleet, 2, 2, 10 * MS));
    let client = client(&fleet, Arc::clone(&own), vec![remote]);
    assert_eq!(calls(&client, 50).await, 0);
    for n in 1..=2 {
        fleet.set_broken(&format!("10.0.1.{n}:80"), true);
    }
    // Every call answered: the ones that met a broken instance went on to
    // the other site.
    assert_eq!(calls(&client, 200).await, 0);
    let snapshot = client.snapshot();
    for instance in snapshot
        .instances
        .iter()
        .filter(|i| i.dc.as_deref() == Some("one"))
    {
        assert_eq!(instance.breaker, BreakerState::Open, "{instance:?}");
    }
    fleet.take_answered("10.0.");
    assert_eq!(calls(&client, 100).await, 0);
    assert_eq!(fleet.take_answered("10.0.2."), 100, "all on the other site");
    // Healed: once the breakers let a probe through, home again.
    for n in 1..=2 {
        fleet.set_broken(&format!("10.0.1.{n}:80"), false);
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(calls(&client, 100).await, 0);
    fleet.take_answered("10.0.");
    assert_eq!(calls(&client, 200).await, 0);
    assert_eq!(fleet.take_answered("10.0.2."), 0, "back home");
    assert_eq!(fleet.take_answered("10.0.1."), 200);
}

#[tokio::test(start_paused = true)]
async fn a_degraded_site_keeps_what_its_healthy_instances_can_carry() {
    let fleet = Fleet::default();
    let own = site(&fleet, 1, 3, MS);
    let remote = RemoteSite::new("two", site(&fleet, 2, 3, MS));
    let client = client(&fleet, own, vec![remote]);
    for n in 1..=2 {
        fleet.set_broken(&format!("10.0.1.{n}:80"), true);
    }
    assert_eq!(calls(&client, 200).await, 0);
    fleet.take_answered("10.0.");
    assert_eq!(calls(&client, 2_000).await, 0);
    // One of three up: it keeps 1.4 × 1/3 ≈ 47 % of the calls.
    let home = fleet.take_answered("10.0.1.") as f64 / 2_000.0;
    assert!((home - 1.4 / 3.0).abs() < 0.06, "{home:.3} stayed home");
}

#[tokio::test(start_paused = true)]
async fn the_nearest_remote_site_takes_the_calls() {
    let fleet = Fleet::default();
    let own = site(&fleet, 1, 2, MS);
    let far = RemoteSite::new("far", site(&fleet, 2, 2, 40 * MS));
    let near = RemoteSite::new("near", site(&fleet, 3, 2, 5 * MS));
    let client = client(&fleet, own, vec![far, near]);
    for n in 1..=2 {
        fleet.set_broken(&format!("10.0.1.{n}:80"), true);
    }
    assert_eq!(calls(&client, 100).await, 0);
    fleet.take_answered("10.0.");
    assert_eq!(calls(&client, 500).await, 0);
    let near = fleet.take_answered("10.0.3.");
    let far = fleet.take_answered("10.0.2.");
    // The far site is tried again now and then as its estimate decays.
    assert!(near > 450, "near {near}, far {far}");
}

/// A site whose registry has never answered (it was down when the client
/// started) has no list to go by: the client goes on with the other
/// site's.
#[tokio::test(start_paused = true)]
async fn a_client_whose_own_registry_never_answered_uses_the_other_site() {
    let fleet = Fleet::default();
    // Nothing listens on port 1: every registry call is refused.
    let registry = beacon::RegistryClient::from_list("http://127.0.0.1:1", None).expect("url");
    let resolver = beacon::Resolver::new(registry, beacon::ResolverConfig::default());
    let own = resolver.service(&"ratings".parse().expect("name"));
    let remote = RemoteSite::new("two", site(&fleet, 2, 2, MS));
    let client = client(&fleet, own, vec![remote]);
    assert_eq!(calls(&client, 50).await, 0);
    assert_eq!(fleet.take_answered("10.0.2."), 50);
    assert!(
        !client.snapshot().registry_reachable,
        "its own never answered"
    );
}
