//! Calling a service, built from small tower parts that can also be used
//! one by one:
//!
//! * [`Balance`]: chooses among the admitted instances of the shared view —
//!   the less loaded of two drawn at random (latency × calls in flight), or
//!   in turn — skipping those the call already tried and those at their cap
//!   of calls in flight, and preferring the caller's [`zone`]; `poll_ready`
//!   is `Pending` while no instance would admit a request.
//! * [`FailFast`]: readiness as an answer — a call that comes while the
//!   balancer has no instance for it fails at once, with the reason.
//! * [`Hedge`]: when an idempotent call's first attempt is late (past a
//!   high quantile of recent latencies), a second to another instance,
//!   within a budget; the loser still reports to its breaker. Generic over
//!   a [`hedge::Policy`] and a service whose futures say where they went.
//! * [`BreakerGate`]: an instance's breaker as readiness (open = not ready).
//! * [`Attempt`]: one try on one instance — the attempt timeout inside the
//!   call's deadline, the verdict recorded on the breaker exactly once.
//! * [`RetryPolicy`]: tower's `retry::Policy` — idempotent calls only, on an
//!   untried instance, within attempts, deadline and budget, after backoff.
//! * [`Transport`]: whatever carries a request to an address;
//!   [`HttpTransport`] (hyper: HTTP/1.1 and HTTP/2, plain and TLS, pooled
//!   per instance)
//!   unless you give another.
//! * [`RequestBody`], [`ResponseBody`]: bodies whole or streamed; a
//!   streamed request body is kept for replay up to a limit.
//! * [`ViewDiscover`]: the view as a tower `Discover` stream of gated
//!   endpoints, for tower's own balancers.
//!
//! [`ServiceClient`] is one stack,
//! `Retry<RetryPolicy, Hedge<FailFast<Balance<NewAttempt<T>>>, ReplayElsewhere>>`,
//! with the call's deadline around it. Per call the balancer's `poll_ready`
//! takes the view's instance list (an `Arc` clone), asks breakers until one
//! admits, and `call` sends there; nothing on that path holds a lock across
//! an `.await`.

mod attempt;
mod balance;
mod body;
mod budget;
mod builder;
mod call;
mod discover;
mod error;
mod fail_fast;
mod gate;
pub mod hedge;
mod histogram;
mod identity;
mod pool;
mod retry;
mod service;
mod settings;
pub mod site;
mod transport;
pub mod zone;

pub use crate::endpoint::Endpoint;
pub use crate::limit::AdaptiveLimit;
pub use attempt::{Admitted, Attempt, NewAttempt};
pub use balance::{Balance, Balancing, NewEndpointService, Routed};
pub use body::{BodyTimeout, BoxError, RequestBody, RequestBodyError, ResponseBody};
pub use builder::ServiceClientBuilder;
pub use call::{Call, Idempotent};
pub use discover::ViewDiscover;
pub use error::{Cause, ClientError};
pub use fail_fast::{FailFast, Unavailable};
pub use gate::BreakerGate;
pub use hedge::{Hedge, HedgeCounts, ReplayElsewhere};
pub use histogram::{CumulativeLatencies, LatencyHistogram};
pub use identity::IdentityMismatch;
pub use retry::{RetryCounts, RetryPolicy};
pub use settings::{Attempts, Hedging, Limits, Retries, SlowStart};
pub use site::RemoteSite;
pub use transport::{ExchangeError, HttpTransport, HttpTransportBuilder, Transport};

use crate::deadline;
use crate::events::{InstanceSnapshot, ServiceSnapshot};
use crate::resolver::{Resolver, ServiceView};
use crate::wire::{Address, InstanceId, ServiceName};
use bytes::Bytes;
use http::{Request, Response, Uri};
use std::{sync::Arc, time::Duration};
use tower::{retry::Retry, Service};

/// Tunables of a [`ServiceClient`], as one flat struct: kept so that
/// `ClientConfig { deadline: …, ..ClientConfig::default() }` keeps
/// compiling. New code uses [`ServiceClient::builder`], whose grouped
/// settings ([`Attempts`], [`Retries`], [`Hedging`], [`Limits`]) are where
/// new settings arrive.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Longest wait for one instance's answer: its headers and whole body
    /// for [`ServiceClient::send`], its headers for a streamed answer
    /// (see [`body_timeout`](Self::body_timeout)); a request body that
    /// streams is all sent before it starts counting. Default 1 s.
    pub attempt_timeout: Duration,
    /// Longest a whole call may take, retries included; within a handler
    /// behind a [`DeadlineLayer`](crate::deadline::DeadlineLayer), no
    /// longer than what is left of the request's budget. Default 3 s.
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
    /// Largest response body read whole (by [`ServiceClient::send`]; a
    /// streamed one has no limit). Default 8 MiB.
    pub max_response_bytes: usize,
    /// Largest streamed request body kept to be sent again on a retry or a
    /// hedge; a longer one is sent to one instance only, and its call says
    /// so if that fails ([`ClientError::NotRetried`]). Default 64 KiB.
    pub replay_limit: usize,
    /// Longest a streamed response body may take after its headers came
    /// (the attempt timeout covers only the headers of a streamed answer).
    /// Default `None`: as long as it takes.
    pub body_timeout: Option<Duration>,
    /// Bound on the TCP handshake. Default 300 ms.
    pub connect_timeout: Duration,
    /// Most attempts in flight to one instance (a bulkhead, as Envoy's
    /// per-host limits and resilience4j's are): the balancer passes over an
    /// instance at its cap, and a call that finds every instance that would
    /// take it at its cap fails at once with [`ClientError::AllAtCapacity`]
    /// instead of queueing. Hedges and retries count too. Default `None`:
    /// no cap.
    pub max_in_flight: Option<u32>,
    /// The caller's own zone: instances whose `zone` metadata names it are
    /// preferred, and the others take calls only as the zone's healthy
    /// share falls (see [`zone`]). Default `None`: every zone alike.
    pub zone: Option<String>,
    /// How a call chooses its instance. Default [`Balancing::LeastLoaded`]
    /// (latency-aware); [`Balancing::RoundRobin`] gives every instance the
    /// same share.
    pub balancing: Balancing,
    /// Hedged requests for idempotent calls (see [`Hedge`]); `None` turns
    /// them off. Default on, with [`Hedging::default`].
    pub hedging: Option<Hedging>,
    /// TLS for `https://` instances: your roots besides Mozilla's, and a
    /// client certificate for mutual TLS — made with
    /// [`ClientTls::config`](crate::net::tls::ClientTls::config). Default
    /// `None`: Mozilla's roots only.
    pub tls: Option<Arc<crate::net::tls::rustls::ClientConfig>>,
    /// Tell each instance how long its attempt will be waited for
    /// ([`DEADLINE_HEADER`](crate::deadline::DEADLINE_HEADER)), so that one
    /// behind a [`DeadlineLayer`](crate::deadline::DeadlineLayer) refuses
    /// spent budgets and keeps its own calls within what is left. Default
    /// `true`. One more header costs about 2,200 instructions a call on
    /// each side over HTTP/2 (`make bench` shows it on steady throughput):
    /// turn it off for instances that don't read it.
    pub send_deadline: bool,
    /// Speak HTTP/2 to plain `http://` instances too, without asking
    /// ("prior knowledge", h2c): only for instances that serve it. Over TLS
    /// HTTP/2 is negotiated anyway. Default `false`.
    pub http2_prior_knowledge: bool,
    /// Call only instances whose server certificate names the service
    /// resolved (a URI SAN `spiffe://beacon/service/<service>` or a DNS SAN
    /// `<service>`): a valid certificate of another service fails the
    /// attempt with [`ClientError::IdentityMismatch`], which that
    /// instance's breaker counts and which is retried elsewhere; a plain
    /// `http://` instance fails it too. Checked once per connection, so a
    /// call costs nothing more. Default `false`.
    pub verify_identity: bool,
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
            replay_limit: 64 * 1024,
            body_timeout: None,
            connect_timeout: Duration::from_millis(300),
            max_in_flight: None,
            zone: None,
            balancing: Balancing::default(),
            hedging: Some(Hedging::default()),
            tls: None,
            send_deadline: true,
            http2_prior_knowledge: false,
            verify_identity: false,
        }
    }
}

/// `call`, unless it was given nothing (the request being served had no
/// time left): then no instance is asked to work on an answer nobody waits
/// for.
fn with_time_left(call: Call) -> Result<Call, ClientError> {
    if call.deadline <= call.started() {
        return Err(ClientError::DeadlineExceeded {
            deadline: Duration::ZERO,
        });
    }
    Ok(call)
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
    /// How long the answering attempt took: from when it was sent to its
    /// whole answer (to its headers, for an answer that streams).
    pub latency: Duration,
}

/// The parts a [`ServiceClient`] is made of.
type Stack<T> = Retry<RetryPolicy, Hedge<FailFast<Balance<NewAttempt<T>>>, ReplayElsewhere>>;

/// A client for one service. Cheap to clone; clones share the view, the
/// connection pool, the latencies and the budgets.
#[derive(Debug)]
pub struct ServiceClient<T = HttpTransport> {
    inner: Arc<Inner<T>>,
    /// Set while this handle, as a `tower::Service`, waits for an instance
    /// to become ready: each handle's own.
    wait: Option<gate::ChangeWait>,
}

#[derive(Debug)]
struct Inner<T> {
    view: Arc<ServiceView>,
    settings: builder::Settings,
    stack: Stack<T>,
    /// A clone of the stack's policy, for its counts.
    retry_policy: RetryPolicy,
    /// First attempts' latencies, recorded by the attempts.
    latencies: Arc<LatencyHistogram>,
}

impl<T> Clone for ServiceClient<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            wait: None,
        }
    }
}

impl ServiceClient {
    /// A client for `service`, sharing `resolver`'s view of it, over HTTP.
    pub fn new(resolver: &Resolver, service: &ServiceName, config: ClientConfig) -> Self {
        Self::for_view(resolver.service(service), config)
    }

    /// A client for `view`'s service over HTTP(S) as `config` says (e.g.
    /// over a [`ServiceView::fixed`] list of instances, with no registry).
    pub fn for_view(view: Arc<ServiceView>, config: ClientConfig) -> Self {
        let transport = HttpTransport::builder()
            .connect_timeout(config.connect_timeout)
            .tls(config.tls.clone())
            .http2_prior_knowledge(config.http2_prior_knowledge)
            .expect_identity(config.verify_identity.then(|| view.service().as_str()))
            .build();
        Self::with_transport(view, config, transport)
    }
}

impl<T: Transport> ServiceClient<T> {
    /// A client for `view`'s service that reaches instances over
    /// `transport` (e.g. an in-memory service, in tests). `config`'s
    /// `connect_timeout`, `tls`, `http2_prior_knowledge` and `verify_identity` belong to the
    /// transport and are not used here: give them to
    /// [`HttpTransport::builder`], or use [`ServiceClient::builder`].
    pub fn with_transport(view: Arc<ServiceView>, config: ClientConfig, transport: T) -> Self {
        Self::compose(view, builder::Settings::from(&config), transport)
    }

    /// The parts, composed as `settings` says.
    fn compose(view: Arc<ServiceView>, settings: builder::Settings, transport: T) -> Self {
        let latencies = Arc::new(LatencyHistogram::new(hedge::WINDOW));
        let attempts =
            NewAttempt::new(transport, settings.attempts).recording(Arc::clone(&latencies));
        let balance = Balance::new(Arc::clone(&view), attempts)
            .balancing(settings.balancing)
            .limits(settings.limits)
            .slow_start(settings.slow_start)
            .load_reports(settings.load_reports)
            .remote_sites(Arc::clone(&settings.remote_sites))
            .zone(settings.zone.as_deref());
        let timeout = settings.attempts.timeout;
        let hedging = settings.hedging.map(|hedging| hedging.within(timeout));
        let hedge = Hedge::new(
            FailFast::new(balance),
            ReplayElsewhere,
            hedging,
            Arc::clone(&latencies),
        );
        let retry_policy = RetryPolicy::new(Arc::clone(&view), settings.retries)
            .remote_sites(Arc::clone(&settings.remote_sites));
        let stack = Retry::new(retry_policy.clone(), hedge);
        Self {
            inner: Arc::new(Inner {
                view,
                settings,
                stack,
                retry_policy,
                latencies,
            }),
            wait: None,
        }
    }

    /// `GET path_and_query` (e.g. `/ratings/camera`).
    pub async fn get(&self, path_and_query: &str) -> Result<Response<Bytes>, ClientError> {
        // Not through `Request::builder`, whose every step moves the whole
        // head: this runs once per call.
        let mut request = Request::new(Bytes::new());
        *request.uri_mut() = Uri::try_from(path_and_query)
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        self.send(request).await
    }

    /// Sends `request` (its URI's path and query are used; the instance
    /// supplies scheme and authority). 4xx answers are returned as `Ok`;
    /// 5xx, timeouts and transport failures are errors, after retries.
    /// Waits for the view's first registry answer (within the deadline),
    /// then fails fast if no instance admits the request.
    pub async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, ClientError> {
        let settings = &self.inner.settings;
        let call = Call::new(request, settings.deadline).within(deadline::current());
        let response = self.call(call).await?;
        let (parts, body) = response.into_parts();
        // Read once, whole, by the attempt that answered (within its
        // timeout and the size limit): taken as it is.
        let body = match body.into_whole() {
            Ok(bytes) => bytes,
            // A transport of one's own may answer a call that wants bytes
            // with a stream: read it here, within the same limit.
            Err(streamed) => streamed
                .bytes(settings.attempts.max_response_bytes)
                .await
                .map_err(|e| ClientError::InvalidRequest(e.to_string()))?,
        };
        Ok(Response::from_parts(parts, body))
    }

    /// Sends `request` with a streamed body and returns the answer as soon
    /// as its headers are in, its body streaming (within
    /// [`ClientConfig::body_timeout`] if set). The request body is read up
    /// to [`ClientConfig::replay_limit`] first: within it, the call is
    /// retried and hedged as [`send`](Self::send)'s are; past it, it goes to
    /// one instance only. Otherwise as [`send`](Self::send). The instance's
    /// breaker and latency estimate judge the headers: a body that breaks
    /// off later is an error the caller reads from the body.
    pub async fn stream<B>(
        &self,
        request: Request<B>,
    ) -> Result<Response<ResponseBody>, ClientError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let settings = &self.inner.settings;
        let call = Call::streaming(request, settings.deadline, settings.retries.replay_limit)
            .await?
            .within(deadline::current());
        self.call(call).await
    }

    /// Sends `call` through the stack.
    async fn call(&self, call: Call) -> Result<Response<ResponseBody>, ClientError> {
        self.inner.call(call).await
    }

    /// The service's instances with their breakers and records: its own
    /// site's, then each remote site's (see [`site`]), each instance with
    /// its site's name when the client was given one.
    pub fn snapshot(&self) -> ServiceSnapshot {
        let settings = &self.inner.settings;
        let mut snapshot = self.inner.view.snapshot();
        if let Some(own) = &settings.site {
            for instance in &mut snapshot.instances {
                instance.dc = Some(own.clone());
            }
        }
        for remote in settings.remote_sites.iter() {
            let theirs = remote.view.snapshot().instances.into_iter();
            snapshot
                .instances
                .extend(theirs.map(|instance| InstanceSnapshot {
                    dc: Some(remote.name().to_owned()),
                    ..instance
                }));
        }
        snapshot
    }

    /// Hedges this client (and its clones) sent, and won.
    pub fn hedges(&self) -> HedgeCounts {
        self.inner.stack.get_ref().counts()
    }

    /// Retries this client (and its clones) made, and the budget refused.
    pub fn retries(&self) -> RetryCounts {
        self.inner.retry_policy.counts()
    }

    /// Latencies of first attempts answered whole since the start, at
    /// `bounds` (seconds).
    pub fn latencies(&self, bounds: &[f64]) -> CumulativeLatencies {
        self.inner.latencies.cumulative(bounds)
    }

    /// The shared view this client balances over.
    pub fn view(&self) -> &Arc<ServiceView> {
        &self.inner.view
    }
}

impl<T: Transport> Inner<T> {
    /// Sends `call` through the stack, once the view has heard from the
    /// registry (within the call's deadline).
    async fn call(&self, call: Call) -> Result<Response<ResponseBody>, ClientError> {
        let call = with_time_left(call)?;
        let view = &self.view;
        let remote = &self.settings.remote_sites;
        if !site::wait_any_synced(view, remote, call.deadline).await {
            return Err(ClientError::RegistryUnreachable {
                service: view.service().clone(),
                error: view
                    .registry_error()
                    .unwrap_or_else(|| "the registry has not answered yet".into()),
            });
        }
        let mut stack = self.stack.clone();
        // Ready at once: a call no instance admits fails instead of
        // waiting. The attempts and backoffs inside keep to the call's
        // deadline.
        let answer = match std::future::poll_fn(|cx| stack.poll_ready(cx)).await {
            Ok(()) => stack.call(call).await,
            Err(refused) => Err(refused),
        };
        if answer.as_ref().is_err_and(|e| e.address().is_none()) {
            // Failed without trying an instance (every one at its limit,
            // or none up): ready at once, touching nothing of tokio's. A
            // caller that loops on such answers would never yield, and on
            // a runtime of a few threads the calls in flight it waits for
            // could not run. This counts it against the task's budget, as
            // tokio's own resources do: it yields now and then.
            tokio::task::consume_budget().await;
        }
        answer
    }
}
