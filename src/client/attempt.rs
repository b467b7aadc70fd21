//! One attempt on one instance: bounded by the attempt timeout and the
//! call's deadline, judged, and the verdict recorded on the instance's
//! breaker exactly once.

use super::{Call, ClientError, ExchangeError, NewEndpointService, ServedBy, Transport};
use crate::breaker::Admission;
use crate::endpoint::Endpoint;
use bytes::Bytes;
use http::Response;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::Instant;

/// A call a breaker let through, and how: the verdict must say whether it
/// was the half-open breaker's single probe.
#[derive(Debug)]
pub struct Admitted {
    /// The call.
    pub call: Call,
    /// What the breaker said.
    pub admission: Admission,
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
    timeout: Duration,
}

impl<T> Attempt<T> {
    /// Attempts on `endpoint` over `transport`, each bounded by `timeout`.
    pub fn new(endpoint: Arc<Endpoint>, transport: T, timeout: Duration) -> Self {
        Self {
            endpoint,
            transport,
            timeout,
        }
    }
}

/// Makes an [`Attempt`] per endpoint over one shared transport: what a
/// [`Balance`](super::Balance) puts behind each gate.
#[derive(Debug, Clone)]
pub struct NewAttempt<T> {
    transport: T,
    timeout: Duration,
}

impl<T> NewAttempt<T> {
    /// Attempts over `transport`, each bounded by `timeout`.
    pub fn new(transport: T, timeout: Duration) -> Self {
        Self { transport, timeout }
    }
}

impl<T: Transport> NewEndpointService for NewAttempt<T> {
    type Service = Attempt<T>;

    fn new_service(&self, endpoint: Arc<Endpoint>) -> Attempt<T> {
        Attempt::new(endpoint, self.transport.clone(), self.timeout)
    }
}

impl<T: Transport> tower::Service<Admitted> for Attempt<T> {
    type Response = Response<Bytes>;
    type Error = ClientError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, ClientError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        self.transport
            .poll_ready(cx)
            .map_err(|e| ClientError::Transport {
                address: self.endpoint.address().clone(),
                cause: Arc::new(e),
            })
    }

    fn call(&mut self, Admitted { call, admission }: Admitted) -> Self::Future {
        let endpoint = Arc::clone(&self.endpoint);
        let request = call.to_request(endpoint.uri());
        let sent = request.map(|r| self.transport.call(r));
        let attempt_timeout = self.timeout;
        // Made before the future, so dropping it unpolled still frees a probe.
        let mut verdict = Verdict::pending(Arc::clone(&endpoint), admission);
        Box::pin(async move {
            let sent = sent?;
            let started = Instant::now();
            let limit = attempt_timeout.min(call.deadline.saturating_duration_since(started));
            let address = endpoint.address();
            let error = match tokio::time::timeout(limit, sent).await {
                Ok(Ok(mut response)) if !response.status().is_server_error() => {
                    verdict.success(started.elapsed());
                    response.extensions_mut().insert(ServedBy {
                        id: endpoint.id(),
                        address: address.clone(),
                        attempts: call.attempt,
                    });
                    return Ok(response);
                }
                Ok(Ok(response)) => ClientError::ServerError {
                    address: address.clone(),
                    status: response.status(),
                },
                Ok(Err(ExchangeError::Connect(cause))) => ClientError::Connect {
                    address: address.clone(),
                    cause,
                },
                Ok(Err(ExchangeError::Broken(cause))) => ClientError::Transport {
                    address: address.clone(),
                    cause,
                },
                // The deadline, not the attempt timeout, cut it short.
                Err(_) if limit < attempt_timeout => {
                    return Err(ClientError::DeadlineExceeded {
                        deadline: call.allowed,
                    })
                }
                Err(_) => ClientError::Timeout {
                    address: address.clone(),
                    after: limit,
                },
            };
            verdict.failure(&error);
            Err(error)
        })
    }
}

/// Counts an attempt in flight on its endpoint while it lasts, and reports
/// its outcome to the endpoint's breaker exactly once — or, if the attempt
/// ends without one (dropped, or out of time), frees the probe slot it may
/// hold so the breaker can't stay stuck half-open.
struct Verdict {
    endpoint: Arc<Endpoint>,
    admission: Admission,
    reported: bool,
}

impl Verdict {
    fn pending(endpoint: Arc<Endpoint>, admission: Admission) -> Self {
        endpoint.attempt_started();
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

impl Drop for Verdict {
    fn drop(&mut self) {
        self.endpoint.attempt_ended();
        if !self.reported {
            self.endpoint.release(self.admission);
        }
    }
}
