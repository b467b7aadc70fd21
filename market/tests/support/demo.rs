//! The demo's topology as real processes on 127.0.0.1: a registry, ratings
//! instances and the market, all on free ports.

use super::binary;
use beacon_kit::process::Service;
use serde_json::Value;
use std::{collections::BTreeMap, time::Duration};
use tokio::time::Instant;

/// Lease length of the test's ratings instances: short, so a paused one
/// lapses quickly.
pub const TTL_MS: &str = "1500";

/// One rating as `/api/things` shows it: (thing, source, instance).
pub type Shown = (String, String, Option<String>);

pub struct Demo {
    pub registry: Service,
    pub ratings: BTreeMap<u16, Service>,
    pub market: Service,
    http: reqwest::Client,
    /// The market's database, removed when the demo ends.
    _db: super::stores::TestDb,
}

impl Demo {
    /// Starts the registry, ratings `instances`, and the market with
    /// `market_args` on top of the original demo's defaults.
    pub fn start(instances: &[u16], market_args: &[&str]) -> Self {
        let registry = Service::start(&binary("beacon-registry"), &["--listen", "127.0.0.1:0"])
            .expect("registry starts");
        let db = super::stores::TestDb::sqlite();
        let mut args = vec!["--listen", "127.0.0.1:0", "--registry", &registry.url];
        args.extend_from_slice(&["--db", &db.url, "--secret", super::stores::SECRET]);
        args.extend_from_slice(market_args);
        let market = Service::start(&binary("beacon-market"), &args).expect("market starts");
        let mut demo = Self {
            registry,
            ratings: BTreeMap::new(),
            market,
            http: reqwest::Client::new(),
            _db: db,
        };
        for &n in instances {
            demo.start_ratings(n);
        }
        demo
    }

    pub fn start_ratings(&mut self, n: u16) {
        self.start_ratings_with_ttl(n, TTL_MS);
    }

    /// `ratings-N` with a lease of `ttl_ms` (a long one outlives a pause:
    /// the instance never re-registers, so only its breaker brings it back).
    pub fn start_ratings_with_ttl(&mut self, n: u16, ttl_ms: &str) {
        let instance = n.to_string();
        let args = [
            "--instance",
            &instance,
            "--port",
            "0",
            "--ttl-ms",
            ttl_ms,
            "--registry",
            &self.registry.url,
            "--allow-faults",
        ];
        let service = Service::start(&binary("beacon-ratings"), &args).expect("ratings starts");
        self.ratings.insert(n, service);
    }

    /// SIGTERM, and a clean exit.
    pub fn stop_ratings(&mut self, n: u16) {
        let service = self.ratings.remove(&n).expect("running");
        let status = service.stop().expect("exits");
        assert!(status.success(), "ratings-{n} exited with {status}");
    }

    /// SIGSTOP, and the process really stopped.
    pub fn pause(&self, n: u16) {
        self.ratings[&n].pause();
    }

    pub fn resume(&self, n: u16) {
        self.ratings[&n].signal("CONT");
    }

    /// `PUT /_faults` on `ratings-N`: answers `delay_ms` late, fails
    /// `fail_percent`% of ratings (the Makefile's slow/flaky/heal targets).
    pub async fn set_faults(&self, n: u16, delay_ms: u64, fail_percent: u8) {
        let answer = self
            .http
            .put(format!("{}/_faults", self.ratings[&n].url))
            .json(&serde_json::json!({"delay_ms": delay_ms, "fail_percent": fail_percent}))
            .send()
            .await
            .expect("ratings answers");
        assert_eq!(answer.status(), 200, "faults set on ratings-{n}");
    }

    pub fn market_url(&self, path: &str) -> String {
        format!("{}{path}", self.market.url)
    }

    /// `GET /api/things`: asserts a 200 with four ratings; returns them and
    /// how long the answer took.
    pub async fn things(&self) -> (Vec<Shown>, Duration) {
        self.things_within(None).await
    }

    /// The same, sent with `beacon-deadline-ms: budget_ms` if given.
    pub async fn things_within(&self, budget_ms: Option<&str>) -> (Vec<Shown>, Duration) {
        let started = Instant::now();
        let mut request = self.http.get(self.market_url("/api/things"));
        if let Some(budget) = budget_ms {
            request = request.header("beacon-deadline-ms", budget);
        }
        let response = request.send().await.expect("market answers");
        assert_eq!(response.status(), 200);
        let body: Vec<Value> = response.json().await.expect("json");
        let took = started.elapsed();
        assert_eq!(body.len(), 4, "four things");
        (shown(&body), took)
    }

    /// `GET /api/status`.
    pub async fn status(&self) -> Value {
        self.http
            .get(self.market_url("/api/status"))
            .send()
            .await
            .expect("market answers")
            .json()
            .await
            .expect("json")
    }

    /// The breaker state the market shows for `ratings-N`, if listed.
    pub async fn breaker(&self, n: u16) -> Option<String> {
        let status = self.status().await;
        let id = format!("ratings-{n}");
        status["instances"]
            .as_array()?
            .iter()
            .find(|i| i["id"] == id.as_str())
            .and_then(|i| i["breaker"].as_str().map(str::to_owned))
    }
}

/// The ratings a `/api/things` body shows.
pub fn shown(things: &[Value]) -> Vec<Shown> {
    things
        .iter()
        .map(|t| {
            let rating = &t["rating"];
            (
                t["id"].as_str().unwrap_or_default().to_owned(),
                rating["source"].as_str().unwrap_or_default().to_owned(),
                rating["instance"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Every shown rating is live and from one of `instances`.
pub fn all_live_from(shown: &[Shown], instances: &[&str]) -> bool {
    shown.iter().all(|(_, source, instance)| {
        source == "live" && instance.as_deref().is_some_and(|i| instances.contains(&i))
    })
}
