//! Calling a service: round-robin over admitted instances, per-attempt
//! timeouts inside an overall deadline, budgeted retries on another instance.
//!
//! Per request the client takes the view's current instance list (an `Arc`
//! clone), walks it round-robin from a shared cursor asking each breaker
//! for admission, and sends to the first that admits. Nothing on that path
//! allocates or holds a lock across an `.await`.
//!
//! An idempotent request that fails (timeout, connect error, 5xx) is retried
//! on an instance not yet tried, after a short jittered backoff, while the
//! deadline and the retry budget allow. The budget (tower's `TpsBudget`)
//! allows retries up to a fraction of recent requests plus a small floor, so
//! retries can't multiply the load on a struggling service.

mod error;
mod service;

pub use error::{Cause, ClientError};

use crate::backoff::Backoff;
use crate::breaker::Admission;
use crate::endpoint::Endpoint;
use crate::events::ServiceSnapshot;
use crate::resolver::{Resolver, ServiceView};
use crate::transport::{http_client, read_body, BodyError, HttpClient};
use crate::wire::{Address, InstanceId, ServiceName};
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use std::{sync::Arc, time::Duration};
use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};

/// Tunables of a [`ServiceClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Longest wait for one instance's answer (headers and body). Default 1 s.
    pub attempt_timeout: Duration,
    /// Longest a whole call may take, retries included. Default 3 s.
    pub deadline: Duration,
    /// Most attempts per call, the first included. Default 3.
    pub max_attempts: u32,
    /// First pause before a retry; doubles per retry. Default 10 ms.
    pub retry_backoff: Duration,
    /// Longest pause before a retry. Default 200 ms.
    pub retry_backoff_cap: Duration,
    /// Retries allowed as a fraction of recent requests. Default 0.2.
    pub retry_ratio: f32,
    /// Retries per second allowed however few requests there are. Default 10.
    pub retry_floor_per_sec: u32,
    /// Largest response body read. Default 8 MiB.
    pub max_response_bytes: usize,
    /// Bound on the TCP handshake. Default 300 ms.
    pub connect_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(1),
            deadline: Duration::from_secs(3),
            max_attempts: 3,
            retry_backoff: Duration::from_millis(10),
            retry_backoff_cap: Duration::from_millis(200),
            retry_ratio: 0.2,
            retry_floor_per_sec: 10,
            max_response_bytes: 8 * 1024 * 1024,
            connect_timeout: Duration::from_millis(300),
        }
    }
}

/// Which instance answered, and after how many attempts. Found in the
/// extensions of every response a [`ServiceClient`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedBy {
    /// The instance's id.
    pub id: InstanceId,
    /// Its address.
    pub address: Address,
    /// Attempts made, this one included.
    pub attempts: u32,
}

/// A client for one service. Cheap to clone; clones share the view, the
/// connection pool and the retry budget.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    view: Arc<ServiceView>,
    http: HttpClient,
    config: ClientConfig,
    budget: TpsBudget,
}

/// How one attempt ended.
enum Outcome {
    Answered(Response<Bytes>),
    Failed(ClientError),
    /// Cut short by the overall deadline: no verdict on the instance.
    OutOfTime,
}

impl ServiceClient {
    /// A client for `service`, sharing `resolver`'s view of it.
    pub fn new(resolver: &Resolver, service: &ServiceName, config: ClientConfig) -> Self {
        let budget = TpsBudget::new(
            Duration::from_secs(10),
            config.retry_floor_per_sec,
            config.retry_ratio,
        );
        Self {
            inner: Arc::new(Inner {
                view: resolver.service(service),
                http: http_client(config.connect_timeout),
                config,
                budget,
            }),
        }
    }

    /// `GET path_and_query` (e.g. `/ratings/camera`).
    pub async fn get(&self, path_and_query: &str) -> Result<Response<Bytes>, ClientError> {
        let request = Request::get(path_and_query)
            .body(Bytes::new())
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        self.send(request).await
    }

    /// Sends `request` (its URI's path and query are used; the instance
    /// supplies scheme and authority). 4xx answers are returned as `Ok`;
    /// 5xx, timeouts and transport failures are errors, after retries.
    pub async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, ClientError> {
        let inner = &*self.inner;
        let config = &inner.config;
        let deadline = Instant::now() + config.deadline;
        let service = inner.view.service();
        inner.view.wait_synced(deadline).await;
        inner.budget.deposit();
        let idempotent = is_idempotent(request.method());
        // Allocates only once a retry is needed.
        let mut tried: Vec<Address> = Vec::new();
        let mut backoff = Backoff::new(config.retry_backoff, config.retry_backoff_cap);
        let mut last_error = None;
        for attempt in 1..=config.max_attempts.max(1) {
            let Some((endpoint, admission)) = self.pick(&tried) else {
                if last_error.is_none() {
                    tracing::warn!("all {service} instances are down");
                }
                let unavailable = if inner.view.endpoints().is_empty() {
                    ClientError::NoInstances {
                        service: service.clone(),
                    }
                } else {
                    ClientError::AllUnavailable {
                        service: service.clone(),
                    }
                };
                return Err(last_error.unwrap_or(unavailable));
            };
            // Per request, so at debug: a service can't afford a line per
            // call. Callers that want the walkthrough's line log it from
            // `ServedBy` (the market does, when the serving instance changes).
            tracing::debug!(
                "{service} using instance {}: {}",
                endpoint.id(),
                endpoint.address()
            );
            match self.attempt(&endpoint, admission, &request, deadline).await {
                Outcome::Answered(mut response) => {
                    response.extensions_mut().insert(ServedBy {
                        id: endpoint.id(),
                        address: endpoint.address().clone(),
                        attempts: attempt,
                    });
                    return Ok(response);
                }
                Outcome::OutOfTime => break,
                Outcome::Failed(error) => {
                    tracing::debug!("{service} attempt {attempt} failed: {error}");
                    last_error = Some(error);
                }
            }
            let now = Instant::now();
            if !idempotent || now >= deadline || !inner.budget.withdraw() {
                break;
            }
            tried.push(endpoint.address().clone());
            let pause = backoff.next_delay().min(deadline - now);
            tokio::time::sleep(pause).await;
        }
        Err(last_error.unwrap_or(ClientError::DeadlineExceeded {
            deadline: config.deadline,
        }))
    }

    /// The next admitted instance in round-robin order, skipping `tried`.
    fn pick(&self, tried: &[Address]) -> Option<(Arc<Endpoint>, Admission)> {
        let view = &self.inner.view;
        let endpoints = view.endpoints();
        let count = endpoints.len();
        if count == 0 {
            return None;
        }
        let start = view.next_cursor();
        let now = Instant::now();
        for step in 0..count {
            let endpoint = &endpoints[(start + step) % count];
            if tried.contains(endpoint.address()) {
                continue;
            }
            let admission = endpoint.admit(now);
            if admission != Admission::Rejected {
                return Some((Arc::clone(endpoint), admission));
            }
        }
        None
    }

    /// One attempt on one instance, recorded on its breaker.
    async fn attempt(
        &self,
        endpoint: &Arc<Endpoint>,
        admission: Admission,
        request: &Request<Bytes>,
        deadline: Instant,
    ) -> Outcome {
        let config = &self.inner.config;
        let started = Instant::now();
        let remaining = deadline.saturating_duration_since(started);
        let limit = config.attempt_timeout.min(remaining);
        let mut verdict = Verdict::pending(endpoint, admission);
        let address = endpoint.address();
        let exchange = self.exchange(address, request);
        let outcome = match tokio::time::timeout(limit, exchange).await {
            Ok(Ok(response)) if !response.status().is_server_error() => {
                verdict.success(started.elapsed());
                return Outcome::Answered(response);
            }
            Ok(Ok(response)) => ClientError::ServerError {
                address: address.clone(),
                status: response.status(),
            },
            Ok(Err(error)) => error,
            Err(_) if limit < config.attempt_timeout => return Outcome::OutOfTime,
            Err(_) => ClientError::Timeout {
                address: address.clone(),
                after: limit,
            },
        };
        verdict.failure(&outcome);
        Outcome::Failed(outcome)
    }

    /// Sends to `address` and reads the whole answer.
    async fn exchange(
        &self,
        address: &Address,
        request: &Request<Bytes>,
    ) -> Result<Response<Bytes>, ClientError> {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let mut outgoing = Request::builder()
            .method(request.method().clone())
            .uri(format!("{address}{path}"))
            .version(request.version());
        if let Some(headers) = outgoing.headers_mut() {
            headers.extend(request.headers().clone());
        }
        let outgoing = outgoing
            .body(Full::new(request.body().clone()))
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        let response = self.inner.http.request(outgoing).await.map_err(|e| {
            let address = address.clone();
            if e.is_connect() {
                ClientError::Connect {
                    address,
                    cause: Arc::new(e),
                }
            } else {
                ClientError::Transport {
                    address,
                    cause: Arc::new(e),
                }
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = read_body(body, self.inner.config.max_response_bytes)
            .await
            .map_err(|e: BodyError| ClientError::Transport {
                address: address.clone(),
                cause: Arc::new(e),
            })?;
        Ok(Response::from_parts(parts, body))
    }

    /// The service's instances with their breakers and records.
    pub fn snapshot(&self) -> ServiceSnapshot {
        self.inner.view.snapshot()
    }

    /// The shared view this client balances over.
    pub fn view(&self) -> &Arc<ServiceView> {
        &self.inner.view
    }
}

/// Reports an attempt's outcome to its endpoint's breaker exactly once —
/// and, if the attempt is dropped mid-flight (the caller gave up), frees the
/// probe slot it may hold so the breaker can't stay stuck half-open.
struct Verdict<'a> {
    endpoint: &'a Arc<Endpoint>,
    admission: Admission,
    reported: bool,
}

impl<'a> Verdict<'a> {
    fn pending(endpoint: &'a Arc<Endpoint>, admission: Admission) -> Self {
        Self {
            endpoint,
            admission,
            reported: false,
        }
    }

    fn success(&mut self, latency: Duration) {
        self.reported = true;
        self.endpoint.succeeded(self.admission, latency);
    }

    fn failure(&mut self, error: &ClientError) {
        self.reported = true;
        self.endpoint
            .failed(self.admission, error.chain(), Instant::now());
    }
}

impl Drop for Verdict<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.endpoint.release(self.admission);
        }
    }
}

/// Methods that may be sent twice without harm (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}
