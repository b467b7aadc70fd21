//! One attempt on one instance: bounded by the attempt timeout and the
//! call's deadline, judged, and the verdict recorded on the instance's
//! breaker exactly once.
//!
//! A 5xx is a failure; so is a gRPC call's UNAVAILABLE, which comes with
//! HTTP 200. A 503 with `Retry-After` is neither: the instance is full and
//! shed the request unserved (see [`overload`](crate::overload)), which
//! lowers its learned limit but not its breaker's opinion of it. A call that wants bytes gets its answer read whole inside the attempt
//! timeout, so a body that breaks off or crawls fails the attempt (and may
//! be retried). A streaming call's attempt ends with the headers: the body
//! goes to the caller as it comes, bounded by the optional body timeout.

use super::{
    histogram::LatencyHistogram, Attempts, Call, ClientError, ExchangeError, NewEndpointService,
    ResponseBody, ServedBy, Transport,
};
use crate::breaker::Admission;
use crate::deadline;
use crate::endpoint::{Endpoint, InFlight};
use crate::overload::LOAD_METRICS_HEADER;
use http::HeaderValue;
use http::Response;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::{sync::Notify, time::Instant};

/// A call a breaker let through, and how: the verdict must say whether it
/// was the half-open breaker's single probe.
#[derive(Debug)]
pub struct Admitted {
    /// The call.
    pub(crate) call: Call,
    /// What the breaker said.
    pub(crate) admission: Admission,
    /// The attempt, counted in flight on the endpoint until it ends.
    pub(crate) in_flight: InFlight,
}

/// Sends admitted calls to one endpoint over `T` and records each outcome
/// on its breaker: a 2xx–4xx answer is a success; a 5xx, a transport
/// failure or the attempt timeout is a failure. An attempt cut short by the
/// call's deadline gets no verdict (the instance may be fine; the caller
/// ran out of time), and neither does one dropped mid-flight.
#[derive(Debug, Clone)]
pub struct Attempt<T> {
    endpoint: Arc<Endpoint>,
    transport: T,
    limits: Attempts,
    /// The deadline header for the whole attempt timeout, made once: nearly
    /// every attempt is given that.
    timeout_header: HeaderValue,
    /// Where first attempts answered whole record their latency (see
    /// [`NewAttempt::recording`]).
    latencies: Option<Arc<LatencyHistogram>>,
}

impl Admitted {
    /// The call let through.
    pub fn call(&self) -> &Call {
        &self.call
    }
}

impl<T> Attempt<T> {
    /// Attempts on `endpoint` over `transport`, within `limits`.
    pub fn new(endpoint: Arc<Endpoint>, transport: T, limits: Attempts) -> Self {
        Self {
            endpoint,
            transport,
            limits,
            timeout_header: deadline::lasting_header_value(limits.timeout),
            latencies: None,
        }
    }
}

/// Makes an [`Attempt`] per endpoint over one shared transport: what a
/// [`Balance`](super::Balance) puts behind each gate.
#[derive(Debug, Clone)]
pub struct NewAttempt<T> {
    transport: T,
    limits: Attempts,
    /// See [`Attempt`]'s: made once for all of them.
    timeout_header: HeaderValue,
    latencies: Option<Arc<LatencyHistogram>>,
}

impl<T> NewAttempt<T> {
    /// Attempts over `transport`, each within `limits` (a `Duration` is
    /// the attempt timeout, with the other limits' defaults).
    pub fn new(transport: T, limits: impl Into<Attempts>) -> Self {
        let limits = limits.into();
        Self {
            transport,
            limits,
            timeout_header: deadline::lasting_header_value(limits.timeout),
            latencies: None,
        }
    }

    /// The same, each first attempt whose answer is read whole recording
    /// its latency in `latencies` (an answer that streams ends its attempt
    /// at its headers, and would pull a hedge delay down for every call).
    /// What a [`Hedge`](super::Hedge) reads its delay from, and the
    /// client's latency metrics.
    pub fn recording(mut self, latencies: Arc<LatencyHistogram>) -> Self {
        self.latencies = Some(latencies);
        self
    }
}

impl<T: Transport> NewEndpointService for NewAttempt<T> {
    type Service = Attempt<T>;

    fn new_service(&self, endpoint: Arc<Endpoint>) -> Attempt<T> {
        Attempt {
            endpoint,
            transport: self.transport.clone(),
            limits: self.limits,
            timeout_header: self.timeout_header.clone(),
            latencies: self.latencies.clone(),
        }
    }
}

impl<T: Transport> tower::Service<Admitted> for Attempt<T> {
    type Response = Response<ResponseBody>;
    type Error = ClientError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, ClientError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        self.transport
            .poll_ready(cx)
            .map_err(|e| ClientError::Transport {
                address: self.endpoint.address().clone(),
                cause: Arc::new(e),
            })
    }

    fn call(
        &mut self,
        Admitted {
            call,
            admission,
            in_flight,
        }: Admitted,
    ) -> Self::Future {
        // Made first, so that dropping the attempt, even unpolled, still
        // frees a probe.
        // In flight as it is sent, itself included (see `crate::limit`).
        let sent_with = self.endpoint.in_flight();
        let mut verdict = Verdict::pending(in_flight, admission, sent_with);
        if call.attempt == 1 && !call.streams_response() {
            verdict.latencies.clone_from(&self.latencies);
        }
        let started = match call.streams_response() {
            true => Instant::now(),
            false => call.attempt_time(),
        };
        let judging = Judging::of(&call, started, self.limits.timeout);
        // The instance is told how long this attempt will be waited for:
        // while a request body streams, until the call's deadline.
        let header = self.limits.send_deadline.then(|| match call.body_sent() {
            None if judging.limit == self.limits.timeout => self.timeout_header.clone(),
            None => deadline::header_value(judging.limit),
            Some(_) => deadline::header_value(call.deadline.saturating_duration_since(started)),
        });
        let sent = match call.to_request(self.endpoint.uri(), header) {
            Ok(request) => self.transport.call(request),
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        // Two futures, not one with both ways in it: the one every call
        // that wants bytes takes stays small (it is boxed per attempt), and
        // keeps not the call, only what judging needs.
        if call.streams_response() {
            Box::pin(streamed(sent, call, judging, verdict, self.limits))
        } else {
            Box::pin(whole(sent, judging, verdict, self.limits))
        }
    }
}

type Exchange = Result<Response<ResponseBody>, ExchangeError>;

/// An attempt whose answer is read whole within the attempt timeout.
async fn whole<F>(sent: F, judging: Judging, verdict: Verdict, limits: Attempts) -> Answer
where
    F: Future<Output = Exchange>,
{
    let answer = async {
        let (parts, body) = sent.await?.into_parts();
        let body = body
            .bytes(limits.max_response_bytes)
            .await
            .map_err(|e| ExchangeError::Broken(e.into()))?;
        Ok(Response::from_parts(parts, ResponseBody::from(body)))
    };
    let answered = tokio::time::timeout_at(judging.until(), answer).await.ok();
    verdict.judge(answered, judging)
}

/// An attempt whose answer streams: it ends with the headers (the body
/// then bounded by the body timeout, if any), and, while its request body
/// streams, only the call's deadline bounds it.
async fn streamed<F>(
    sent: F,
    call: Call,
    judging: Judging,
    verdict: Verdict,
    limits: Attempts,
) -> Answer
where
    F: Future<Output = Exchange>,
{
    let answer = async {
        let response = sent.await?;
        Ok(match limits.body_timeout {
            Some(timeout) => response.map(|body| body.with_timeout(timeout)),
            None => response,
        })
    };
    let answered = match call.body_sent() {
        None => tokio::time::timeout_at(judging.until(), answer).await.ok(),
        Some(body_sent) => once_sent(answer, body_sent, limits.timeout, call.deadline).await,
    };
    verdict.judge(answered, judging)
}

/// What judging an attempt needs of its call: taken before the wait, so
/// that the call need not be kept in the attempt's future.
#[derive(Debug, Clone, Copy)]
struct Judging {
    attempt: u32,
    grpc: bool,
    started: Instant,
    /// The attempt timeout, or less if the call's deadline comes first.
    limit: Duration,
    attempt_timeout: Duration,
    deadline: Instant,
    /// When the call began: what it was given (for the error that says it
    /// ran out) is worked out only then.
    call_started: Instant,
}

impl Judging {
    /// For an attempt at `call` sent at `started`.
    fn of(call: &Call, started: Instant, attempt_timeout: Duration) -> Self {
        Self {
            attempt: call.attempt,
            grpc: call.is_grpc(),
            started,
            limit: attempt_timeout.min(call.deadline.saturating_duration_since(started)),
            attempt_timeout,
            deadline: call.deadline,
            call_started: call.started(),
        }
    }

    /// When the attempt's time is up.
    fn until(&self) -> Instant {
        self.started + self.limit
    }
}

type Answer = Result<Response<ResponseBody>, ClientError>;

/// Whether `response` is a success for the instance: not a 5xx, and, for
/// a gRPC call, not UNAVAILABLE.
fn answered_well<B>(grpc: bool, response: &Response<B>) -> bool {
    if response.status().is_server_error() {
        return false;
    }
    !(grpc && grpc_unavailable(response))
}

/// Whether `response` says the instance shed the request unserved: 503
/// with `Retry-After`, as [`OverloadLayer`](crate::overload::OverloadLayer)
/// and most proxies answer when full.
fn shed<B>(response: &Response<B>) -> bool {
    response.status() == http::StatusCode::SERVICE_UNAVAILABLE
        && response.headers().contains_key(http::header::RETRY_AFTER)
}

/// Whether a gRPC answer says UNAVAILABLE (status 14) in its headers — a
/// "trailers-only" answer, HTTP 200: the instance is shutting down or
/// shedding load, which is what a 503 says in plain HTTP.
fn grpc_unavailable<B>(response: &Response<B>) -> bool {
    response
        .headers()
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == b"14")
}

/// The answer of an attempt whose request body streams: until the body is
/// all sent only the call's deadline bounds it (the time is the sender's),
/// then the attempt timeout too. `None` if time ran out.
async fn once_sent<F: Future>(
    answer: F,
    body_sent: &Notify,
    timeout: Duration,
    deadline: Instant,
) -> Option<F::Output> {
    let mut answer = std::pin::pin!(answer);
    tokio::select! {
        answered = &mut answer => return Some(answered),
        () = body_sent.notified() => {}
        () = tokio::time::sleep_until(deadline) => return None,
    }
    let until = (Instant::now() + timeout).min(deadline);
    tokio::time::timeout_at(until, answer).await.ok()
}

/// Keeps an attempt counted in flight on its endpoint while it lasts, and
/// reports its outcome to the endpoint's breaker exactly once — or, if the
/// attempt ends without one (dropped, or out of time), frees the probe slot
/// it may hold so the breaker can't stay stuck half-open.
struct Verdict {
    in_flight: InFlight,
    admission: Admission,
    reported: bool,
    /// Attempts in flight to the endpoint as this one was sent, itself
    /// included: what its answer says of the instance's limit depends on
    /// it. Here, beside the flags, not in [`InFlight`]: the attempt's
    /// boxed future stays in its allocator size class.
    sent_with: u32,
    /// Where a good answer's latency goes, if anywhere.
    latencies: Option<Arc<LatencyHistogram>>,
}

impl Verdict {
    fn pending(in_flight: InFlight, admission: Admission, sent_with: u32) -> Self {
        Self {
            in_flight,
            admission,
            reported: false,
            sent_with,
            latencies: None,
        }
    }

    fn endpoint(&self) -> &Endpoint {
        self.in_flight.endpoint()
    }

    /// The attempt's answer from what the exchange gave (`None`: time ran
    /// out), with the verdict recorded.
    fn judge(mut self, answered: Option<Exchange>, judging: Judging) -> Answer {
        let Judging {
            attempt,
            grpc,
            started,
            limit,
            attempt_timeout,
            deadline,
            call_started,
        } = judging;
        let address = self.in_flight.endpoint().address();
        let error = match answered {
            Some(Ok(mut response)) if answered_well(grpc, &response) => {
                let now = Instant::now();
                let latency = now - started;
                response.extensions_mut().insert(ServedBy {
                    id: self.endpoint().id(),
                    address: address.clone(),
                    attempts: attempt,
                    latency,
                });
                let report = response.headers().get(LOAD_METRICS_HEADER);
                self.success(latency, now, report);
                return Ok(response);
            }
            Some(Ok(response)) if shed(&response) => {
                self.reported = true;
                self.endpoint().busy(self.admission);
                return Err(ClientError::Overloaded {
                    address: address.clone(),
                });
            }
            Some(Ok(response)) if response.status().is_server_error() => ClientError::ServerError {
                address: address.clone(),
                status: response.status(),
            },
            Some(Ok(_)) => ClientError::GrpcUnavailable {
                address: address.clone(),
            },
            Some(Err(ExchangeError::Connect(cause))) => ClientError::Connect {
                address: address.clone(),
                cause,
            },
            Some(Err(ExchangeError::Identity(mismatch))) => ClientError::IdentityMismatch {
                address: address.clone(),
                mismatch,
            },
            Some(Err(ExchangeError::Broken(cause))) => ClientError::Transport {
                address: address.clone(),
                cause,
            },
            // The caller's body failed: no verdict on the instance.
            Some(Err(ExchangeError::Request(cause))) => {
                return Err(ClientError::RequestBody { cause })
            }
            // The deadline, not the attempt timeout, cut it short.
            None if limit < attempt_timeout || Instant::now() >= deadline => {
                return Err(ClientError::DeadlineExceeded {
                    deadline: deadline.saturating_duration_since(call_started),
                })
            }
            None => ClientError::Timeout {
                address: address.clone(),
                after: attempt_timeout,
            },
        };
        // Only a timeout says how slow the instance is (a refusal or a
        // quick 503 says nothing about it).
        let took = matches!(error, ClientError::Timeout { .. }).then(|| started.elapsed());
        self.failure(&error, took);
        Err(error)
    }

    fn success(&mut self, latency: Duration, now: Instant, report: Option<&HeaderValue>) {
        self.reported = true;
        if let Some(latencies) = &self.latencies {
            latencies.record(latency, now);
        }
        self.endpoint()
            .succeeded(self.admission, latency, now, self.sent_with, report);
    }

    fn failure(&mut self, error: &ClientError, took: Option<Duration>) {
        self.reported = true;
        self.endpoint()
            .failed(self.admission, error.chain(), took, Instant::now());
    }
}

impl Drop for Verdict {
    fn drop(&mut self) {
        if !self.reported {
            self.endpoint().release(self.admission);
        }
    }
}
