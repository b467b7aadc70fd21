//! The load generator: drives requests at a fixed rate or a fixed
//! concurrency through one of the contenders, and records every request's
//! start time, latency, outcome and serving instance.

use beacon::{
    net::http::{http_client, read_body, HttpClient},
    ServiceClient,
};
use bytes::Bytes;
use http_body_util::Full;
use serde::Serialize;
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::time::Instant;

/// How a request reaches the ratings instances.
#[derive(Debug, Clone)]
pub enum Route {
    /// Through Beacon: discovery, round-robin, breakers, retries.
    Beacon(ServiceClient),
    /// A bare pooled client doing static round-robin over fixed addresses:
    /// the floor, with no discovery and no failure handling.
    Static {
        /// The pooled client.
        http: HttpClient,
        /// Base URLs of the instances.
        targets: Arc<[String]>,
        /// Round-robin position.
        next: Arc<AtomicUsize>,
    },
    /// Through one URL, e.g. a proxy in front (HAProxy, nginx).
    Proxy {
        /// The pooled client.
        http: HttpClient,
        /// The proxy's base URL.
        url: String,
    },
}

impl Route {
    /// Static round-robin over `targets`.
    pub fn fixed(targets: Vec<String>) -> Self {
        Self::fixed_over(http_client(Duration::from_millis(100)), targets)
    }

    /// Static round-robin over `targets` through `http` (e.g. a client
    /// trusting the bench's CA, or one speaking HTTP/2).
    pub fn fixed_over(http: HttpClient, targets: Vec<String>) -> Self {
        Self::Static {
            http,
            targets: targets.into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Everything through `url`.
    pub fn proxy(url: String) -> Self {
        Self::proxy_over(http_client(Duration::from_millis(100)), url)
    }

    /// Everything through `url`, sent with `http`.
    pub fn proxy_over(http: HttpClient, url: String) -> Self {
        Self::Proxy { http, url }
    }

    /// Sends `GET path`; `Ok(body)` for a 2xx answer.
    async fn get(&self, path: &str) -> Result<Bytes, String> {
        match self {
            Self::Beacon(client) => {
                let response = client.get(path).await.map_err(|e| e.to_string())?;
                if response.status().is_success() {
                    Ok(response.into_body())
                } else {
                    Err(format!("status {}", response.status()))
                }
            }
            Self::Static {
                http,
                targets,
                next,
            } => {
                let base = &targets[next.fetch_add(1, Ordering::Relaxed) % targets.len()];
                plain_get(http, &format!("{base}{path}")).await
            }
            Self::Proxy { http, url } => plain_get(http, &format!("{url}{path}")).await,
        }
    }
}

async fn plain_get(http: &HttpClient, uri: &str) -> Result<Bytes, String> {
    let request = http::Request::get(uri)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = http.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = read_body(response.into_body(), 1 << 20)
        .await
        .map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("status {status}"))
    }
}

/// One request's record.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// When it started, from the start of the run (milliseconds in JSON).
    #[serde(rename = "at_ms", serialize_with = "as_ms")]
    pub at: Duration,
    /// How long it took, up to the request timeout (milliseconds in JSON).
    #[serde(rename = "latency_ms", serialize_with = "as_ms")]
    pub latency: Duration,
    /// Whether the asked-for rating came back (a 2xx with the right body)
    /// within the timeout.
    pub ok: bool,
    /// A 2xx whose body was not the rating asked for: counted as a failure,
    /// and a broken benchmark, never as a request done.
    pub wrong_answer: bool,
    /// The instance that answered (from the ratings body), when known.
    pub instance: Option<String>,
}

fn as_ms<S: serde::Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// What every request asks and how long the caller waits at most.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Path asked for.
    pub path: String,
    /// The caller's own limit per request: past it the request is an error.
    pub timeout: Duration,
    /// How long to run.
    pub duration: Duration,
}

impl Workload {
    /// `GET /ratings/camera` for `duration`, a caller waiting 1 s at most.
    pub fn camera(duration: Duration) -> Self {
        Self {
            path: "/ratings/camera".to_owned(),
            timeout: Duration::from_secs(1),
            duration,
        }
    }
}

/// One request, timed and classified.
/// `due`: when an open loop scheduled it (its slice in the timeline, even if
/// the task starts a moment later); `None`: when it starts.
async fn one(route: &Route, workload: &Workload, start: Instant, due: Option<Instant>) -> Sample {
    let begun = Instant::now();
    let result = tokio::time::timeout(workload.timeout, route.get(&workload.path)).await;
    let latency = begun.elapsed();
    let (ok, instance, wrong_answer) = match result {
        Ok(Ok(body)) => match verify(&body, &workload.path) {
            Some(instance) => (true, Some(instance), false),
            None => (false, None, true),
        },
        _ => (false, None, false),
    };
    Sample {
        at: due.unwrap_or(begun) - start,
        latency,
        ok,
        wrong_answer,
        instance,
    }
}

/// The answering instance, if `body` is the rating `path` asked for: the
/// thing named by the path's last segment, with stars, from an instance.
pub fn verify(body: &[u8], path: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let thing = path.rsplit('/').next()?;
    (value["thing"] == thing && value["stars"].is_f64())
        .then(|| value["instance"].as_str().map(str::to_owned))
        .flatten()
}

/// `concurrency` callers, each sending its next request when the last one
/// ends, for the workload's duration.
pub async fn closed_loop(route: &Route, workload: &Workload, concurrency: usize) -> Vec<Sample> {
    let start = Instant::now();
    let until = start + workload.duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (route, workload) = (route.clone(), workload.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < until {
                    samples.push(one(&route, &workload, start, None).await);
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await.unwrap_or_default());
    }
    samples.sort_by_key(|s| s.at);
    samples
}

/// Requests started at a fixed `rate` per second, whatever the answers do
/// (an open loop: a hanging instance can't slow the arrivals down).
/// `during` runs alongside, with the run's start instant (fault injection).
pub async fn open_loop<F, Fut>(
    route: &Route,
    workload: &Workload,
    rate: u32,
    during: F,
) -> Vec<Sample>
where
    F: FnOnce(Instant) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let faults = tokio::spawn(during(start));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut running = tokio::task::JoinSet::new();
    loop {
        let due = ticker.tick().await;
        // Checked after the tick: a tick that fires past the end must not
        // start a request outside the run (and its time buckets).
        if start.elapsed() >= workload.duration {
            break;
        }
        let (route, workload) = (route.clone(), workload.clone());
        running.spawn(async move { one(&route, &workload, start, Some(due)).await });
    }
    let mut samples = Vec::new();
    while let Some(sample) = running.join_next().await {
        if let Ok(sample) = sample {
            samples.push(sample);
        }
    }
    let _ = faults.await;
    samples.sort_by_key(|s| s.at);
    samples
}
