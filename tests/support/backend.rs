//! A small HTTP backend whose behaviour a test switches at will.

use axum::{extract::State, http::StatusCode, routing::any, Json, Router};
use std::{
    sync::{
        atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// What the backend does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// 200 with `{"backend": name}`.
    Answer = 0,
    /// Accepts and never answers (until stopped).
    Hang = 1,
    /// 500.
    Fail = 2,
    /// 500 to calls, while `/_health` answers 200: a flaky instance whose
    /// health check says nothing about its calls.
    FailCalls = 3,
}

#[derive(Clone)]
struct Shared {
    name: String,
    mode: Arc<AtomicU8>,
    hits: Arc<AtomicUsize>,
    health: Arc<HealthCounts>,
    stop: CancellationToken,
}

/// What the backend saw of health checks.
#[derive(Default)]
struct HealthCounts {
    /// How long each health check takes to answer, in ms.
    delay_ms: AtomicU64,
    checks: AtomicUsize,
    in_flight: AtomicUsize,
    /// The most health checks ever in flight at once.
    peak: AtomicUsize,
}

/// A running backend on 127.0.0.1:0.
pub struct Backend {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Shared,
    task: JoinHandle<()>,
}

impl Backend {
    /// Starts a backend that answers as `name`.
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Shared {
            name: name.to_owned(),
            mode: Arc::new(AtomicU8::new(Mode::Answer as u8)),
            hits: Arc::new(AtomicUsize::new(0)),
            health: Arc::default(),
            stop: CancellationToken::new(),
        };
        let app = Router::new()
            .route("/_health", any(health))
            .route("/{*path}", any(handle))
            .with_state(shared.clone());
        let stop = shared.stop.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Self { url, shared, task }
    }

    /// Switches behaviour.
    pub fn set(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Requests received so far, answered or not (health checks excluded).
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Makes every health check take `delay` before it answers.
    pub fn set_health_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.health.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Health checks received so far, and the most ever in flight at once.
    pub fn health_checks(&self) -> (usize, usize) {
        let health = &self.shared.health;
        (
            health.checks.load(Ordering::SeqCst),
            health.peak.load(Ordering::SeqCst),
        )
    }

    /// Stops listening and closes its connections: later connects are refused.
    pub async fn kill(self) {
        self.shared.stop.cancel();
        let _ = self.task.await;
    }
}

async fn handle(State(shared): State<Shared>) -> (StatusCode, Json<serde_json::Value>) {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    if shared.mode.load(Ordering::SeqCst) == Mode::FailCalls as u8 {
        let body = Json(serde_json::json!({ "backend": shared.name }));
        return (StatusCode::INTERNAL_SERVER_ERROR, body);
    }
    respond(shared).await
}

/// Health checks behave like any request (a hanging backend hangs), after
/// the set delay; counted apart from requests, with how many overlap.
async fn health(State(shared): State<Shared>) -> (StatusCode, Json<serde_json::Value>) {
    let health = Arc::clone(&shared.health);
    health.checks.fetch_add(1, Ordering::SeqCst);
    let now = health.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    health.peak.fetch_max(now, Ordering::SeqCst);
    let delay = health.delay_ms.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let answer = respond(shared).await;
    health.in_flight.fetch_sub(1, Ordering::SeqCst);
    answer
}

async fn respond(shared: Shared) -> (StatusCode, Json<serde_json::Value>) {
    let body = Json(serde_json::json!({ "backend": shared.name }));
    match shared.mode.load(Ordering::SeqCst) {
        m if m == Mode::Hang as u8 => {
            shared.stop.cancelled().await;
            (StatusCode::SERVICE_UNAVAILABLE, body)
        }
        m if m == Mode::Fail as u8 => (StatusCode::INTERNAL_SERVER_ERROR, body),
        _ => (StatusCode::OK, body),
    }
}
