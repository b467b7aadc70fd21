//! "Deep chain": what deadline propagation saves the service at the end of
//! a chain when callers give up.
//!
//! A caller gives each request 100 ms. A middle service (in this process:
//! axum and Beacon, as a user writes one) spends a share of that on its own
//! work — 0 to 150 ms, the same sequence in every run — then asks a ratings
//! instance (a real `beacon-ratings`, 30 ms per answer) through Beacon.
//! Once the middle's own work has used more than 70 ms, the answer can't
//! reach the caller in time, and whatever ratings computes for it is
//! wasted. The middle does its work in a task of its own, which finishes
//! when its caller has gone — as a service that fills a cache does, or one
//! behind a proxy that does not pass a caller's disconnect on. (A middle
//! whose handler is dropped with its caller's connection stops its own
//! calls that way too: HTTP/1.1 and HTTP/2 servers cancel the handler.)
//!
//! * **off**: no budget travels (`send_deadline: false`, no
//!   `DeadlineLayer`): the middle asks ratings whatever the time left.
//! * **on**: the caller sends `beacon-deadline-ms: 100`; the middle's calls
//!   get what is left, and those with nothing left are never sent.
//!
//! Wasted work is answers ratings computed (its own count) less answers
//! the caller got in time.

use crate::{
    faults::{put_faults, served},
    topology::Backends,
};
use axum::{extract::State, http::StatusCode, routing::get, Router};
use beacon::{
    deadline::{self, DeadlineLayer, DEADLINE_HEADER},
    net::http::{http_client, HttpClient},
    wire::Address,
    ClientConfig, ResolverConfig, ServiceClient, ServiceView,
};
use bytes::Bytes;
use http_body_util::Full;
use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{net::TcpListener, time::Instant};

/// The caller's budget per request.
const BUDGET: Duration = Duration::from_millis(100);
/// What ratings takes per answer.
const RATINGS_DELAY_MS: u64 = 30;
/// The middle's own work per request is `0..SPEND_SPAN_MS` milliseconds.
const SPEND_SPAN_MS: u64 = 150;
/// Callers sending at once.
const CALLERS: usize = 16;

/// One mode's result.
#[derive(Debug, Clone, Copy)]
pub struct ChainRun {
    /// Requests the callers sent.
    pub requests: u64,
    /// Answers that reached the caller within its budget.
    pub in_time: u64,
    /// Answers ratings computed.
    pub backend_answers: u64,
}

impl ChainRun {
    /// Answers ratings computed that no caller got in time.
    pub fn wasted(&self) -> u64 {
        self.backend_answers.saturating_sub(self.in_time)
    }
}

/// Runs the chain with propagation off, then on, for `length` each, and
/// gives the report's section.
pub async fn run(length: Duration) -> Result<String, String> {
    let mut backends = Backends::start()?;
    let url = backends.url(1)?;
    put_faults(&url, RATINGS_DELAY_MS, 0).await?;
    let off = one_mode(&url, false, length).await?;
    let on = one_mode(&url, true, length).await?;
    let _ = put_faults(&url, 0, 0).await;
    backends.heal()?;
    Ok(markdown(&off, &on))
}

async fn one_mode(ratings: &str, propagate: bool, length: Duration) -> Result<ChainRun, String> {
    let (middle, busy) = middle_hop(ratings, propagate).await?;
    let before = served(&[ratings.to_owned()]).await;
    let caller = http_client(Duration::from_millis(300));
    let (requests, in_time) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let until = Instant::now() + length;
    let workers: Vec<_> = (0..CALLERS)
        .map(|worker| {
            let (caller, middle) = (caller.clone(), middle.clone());
            let (requests, in_time) = (Arc::clone(&requests), Arc::clone(&in_time));
            tokio::spawn(async move {
                let mut n = worker as u64;
                while Instant::now() < until {
                    requests.fetch_add(1, Ordering::Relaxed);
                    if ask(&caller, &middle, spend(n), propagate).await {
                        in_time.fetch_add(1, Ordering::Relaxed);
                    }
                    n += CALLERS as u64;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.map_err(|e| e.to_string())?;
    }
    // Answers still being computed for callers that gave up count too:
    // wait for the middle's last tasks to end.
    let settled = Instant::now() + Duration::from_secs(10);
    while busy.load(Ordering::SeqCst) > 0 {
        if Instant::now() > settled {
            return Err("the middle's tasks did not end within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = served(&[ratings.to_owned()]).await;
    let backend_answers = match (before.first(), after.first()) {
        (Some(Some(b)), Some(Some(a))) => a.saturating_sub(*b),
        _ => return Err("ratings' /_metrics could not be read".into()),
    };
    Ok(ChainRun {
        requests: requests.load(Ordering::Relaxed),
        in_time: in_time.load(Ordering::Relaxed),
        backend_answers,
    })
}

/// The middle's own work for request `n`: spread evenly over
/// `0..SPEND_SPAN_MS`, the same sequence in both modes.
fn spend(n: u64) -> Duration {
    Duration::from_millis(n.wrapping_mul(7_919) % SPEND_SPAN_MS)
}

/// One request from the caller: whether the answer came within the budget.
async fn ask(caller: &HttpClient, middle: &str, spend: Duration, propagate: bool) -> bool {
    let mut request = http::Request::get(format!("{middle}/camera?spend_ms={}", spend.as_millis()));
    if propagate {
        request = request.header(DEADLINE_HEADER, BUDGET.as_millis().to_string());
    }
    let Ok(request) = request.body(Full::new(Bytes::new())) else {
        return false;
    };
    let answered = tokio::time::timeout(BUDGET, caller.request(request)).await;
    matches!(answered, Ok(Ok(response)) if response.status().is_success())
}

/// Counts one of the middle's tasks while it runs.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn new(busy: Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::SeqCst);
        Self(busy)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(serde::Deserialize)]
struct Spend {
    spend_ms: u64,
}

/// The middle service on a free port: spends what the request says, then
/// asks ratings through Beacon. Also gives the count of its tasks still
/// running.
async fn middle_hop(ratings: &str, propagate: bool) -> Result<(String, Arc<AtomicUsize>), String> {
    let address = Address::new(ratings).map_err(|e| e.to_string())?;
    let view = ServiceView::fixed(
        "ratings".parse().map_err(|e| format!("{e}"))?,
        &[("ratings-1".parse().map_err(|e| format!("{e}"))?, address)],
        &ResolverConfig::default(),
    );
    let config = ClientConfig {
        send_deadline: propagate,
        hedging: None,
        ..ClientConfig::default()
    };
    let client = Arc::new(ServiceClient::for_view(view, config));
    let busy = Arc::new(AtomicUsize::new(0));
    let handler =
        |State((client, busy)): State<(Arc<ServiceClient>, Arc<AtomicUsize>)>,
         axum::extract::Query(Spend { spend_ms }): axum::extract::Query<Spend>| async move {
            let running = Running::new(busy);
            // A spawned task starts without the request's deadline: it is
            // handed over (see beacon::deadline).
            let deadline = deadline::current();
            let work = async move {
                tokio::time::sleep(Duration::from_millis(spend_ms)).await;
                client.get("/ratings/camera").await
            };
            let task = tokio::spawn(async move {
                let _running = running;
                match deadline {
                    Some(deadline) => deadline::within(deadline, work).await,
                    None => work.await,
                }
            });
            match task.await {
                Ok(Ok(response)) if response.status().is_success() => StatusCode::OK,
                _ => StatusCode::GATEWAY_TIMEOUT,
            }
        };
    let mut app = Router::new()
        .route("/camera", get(handler))
        .with_state((client, Arc::clone(&busy)));
    if propagate {
        app = app.layer(DeadlineLayer::new());
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, busy))
}

fn share(part: u64, whole: u64) -> f64 {
    // Counts of requests: exact as f64.
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The report's section: both modes side by side, and the ratio.
pub fn markdown(off: &ChainRun, on: &ChainRun) -> String {
    let row = |name: &str, run: &ChainRun| {
        format!(
            "| {name} | {} | {} ({:.0} %) | {} | {} ({:.0} % of requests) |\n",
            run.requests,
            run.in_time,
            100.0 * share(run.in_time, run.requests),
            run.backend_answers,
            run.wasted(),
            100.0 * share(run.wasted(), run.requests),
        )
    };
    let ratio =
        share(on.wasted(), on.requests) / share(off.wasted(), off.requests).max(f64::MIN_POSITIVE);
    format!(
        "## Deep chain: deadline propagation\n\n\
         A caller gives each request {budget} ms; a middle service spends 0–{span} ms of it \
         (the same sequence in both runs), then asks a `beacon-ratings` instance that takes \
         {delay} ms per answer, through Beacon. \"Wasted\" is answers ratings computed that no \
         caller got in time. With propagation on, the caller sends `beacon-deadline-ms`, the \
         middle runs behind `DeadlineLayer`, and its calls get what is left.\n\n\
         | propagation | requests | answered in time | ratings' answers | wasted |\n\
         |---|---|---|---|---|\n{off}{on}\n\
         Wasted work per request, on / off: **{ratio:.2}**.\n\n",
        budget = BUDGET.as_millis(),
        span = SPEND_SPAN_MS,
        delay = RATINGS_DELAY_MS,
        off = row("off", off),
        on = row("on", on),
    )
}
