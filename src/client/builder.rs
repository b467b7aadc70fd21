//! [`ServiceClient::builder`]: a client's settings, grouped, each with its
//! default documented where it is set.

use super::{
    Attempts, Balancing, ClientConfig, ClientError, Hedging, HttpTransport, HttpTransportBuilder,
    Limits, RemoteSite, Retries, ServiceClient, SlowStart, Transport,
};
use crate::resolver::{Resolver, ServiceView};
use crate::wire::ServiceName;
use std::{sync::Arc, time::Duration};

/// Every setting of a [`ServiceClient`], grouped: what
/// [`ServiceClient::with_transport`] composes its parts from.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) deadline: Duration,
    pub(crate) attempts: Attempts,
    pub(crate) retries: Retries,
    pub(crate) hedging: Option<Hedging>,
    pub(crate) limits: Limits,
    pub(crate) slow_start: Option<SlowStart>,
    pub(crate) load_reports: bool,
    pub(crate) balancing: Balancing,
    pub(crate) zone: Option<String>,
    /// The client's own site's name, for snapshots.
    pub(crate) site: Option<String>,
    /// Other sites to fail over to (see [`site`](super::site)).
    pub(crate) remote_sites: Arc<[RemoteSite]>,
    /// Whether instances must prove they are the service (see
    /// [`ServiceClientBuilder::verify_identity`]): the transport's
    /// business, kept here so the builder can hand it the service's name.
    pub(crate) verify_identity: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(3),
            attempts: Attempts::default(),
            retries: Retries::default(),
            hedging: Some(Hedging::default()),
            limits: Limits::default(),
            slow_start: None,
            load_reports: true,
            balancing: Balancing::default(),
            zone: None,
            site: None,
            remote_sites: Arc::from(Vec::new()),
            verify_identity: false,
        }
    }
}

impl From<&ClientConfig> for Settings {
    fn from(config: &ClientConfig) -> Self {
        Self {
            deadline: config.deadline,
            attempts: Attempts {
                timeout: config.attempt_timeout,
                max_response_bytes: config.max_response_bytes,
                body_timeout: config.body_timeout,
                send_deadline: config.send_deadline,
            },
            retries: Retries {
                max_attempts: config.max_attempts,
                backoff: config.retry_backoff,
                backoff_cap: config.retry_backoff_cap,
                ratio: config.retry_ratio,
                floor_per_sec: config.retry_floor_per_sec,
                replay_limit: config.replay_limit,
            },
            hedging: config.hedging,
            limits: Limits::default().max_in_flight(config.max_in_flight),
            balancing: config.balancing,
            zone: config.zone.clone(),
            verify_identity: config.verify_identity,
            // What only the builder sets: as by default.
            ..Self::default()
        }
    }
}

/// Builds a [`ServiceClient`]; made by [`ServiceClient::builder`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use beacon::{client::Retries, RegistryClient, Resolver, ResolverConfig, ServiceClient};
/// use std::time::Duration;
/// let registry = RegistryClient::from_list("http://127.0.0.1:8400", None)?;
/// let resolver = Resolver::new(registry, ResolverConfig::default());
/// let ratings = ServiceClient::builder(&resolver, "ratings")
///     .deadline(Duration::from_secs(1))
///     .retries(Retries::default().max_attempts(2))
///     .build()?;
/// let answer = ratings.get("/ratings/camera").await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ServiceClientBuilder {
    view: Result<Arc<ServiceView>, ClientError>,
    settings: Settings,
    http: HttpTransportBuilder,
}

impl ServiceClient {
    /// Settings for a client of `service` over `resolver`'s shared view;
    /// instances are reached over HTTP(S) with the TLS the resolver was
    /// given (or its registry client's), so TLS is given once.
    pub fn builder(resolver: &Resolver, service: &str) -> ServiceClientBuilder {
        let view = service
            .parse::<ServiceName>()
            .map(|service| resolver.service(&service))
            .map_err(|e| ClientError::InvalidRequest(format!("service name {service:?}: {e}")));
        ServiceClientBuilder {
            view,
            settings: Settings::default(),
            http: HttpTransport::builder().tls(resolver.tls()),
        }
    }

    /// Settings for a client over `view` (e.g. a
    /// [`ServiceView::fixed`] list of instances, with no registry).
    pub fn builder_for_view(view: Arc<ServiceView>) -> ServiceClientBuilder {
        ServiceClientBuilder {
            view: Ok(view),
            settings: Settings::default(),
            http: HttpTransport::builder(),
        }
    }
}

impl ServiceClientBuilder {
    /// Longest a whole call may take, retries included; within a handler
    /// behind a [`DeadlineLayer`](crate::deadline::DeadlineLayer), no
    /// longer than what is left of the request's budget. Default is 3 s.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.settings.deadline = deadline;
        self
    }

    /// The bounds on each attempt. Default is [`Attempts::default`].
    pub fn attempts(mut self, attempts: Attempts) -> Self {
        self.settings.attempts = attempts;
        self
    }

    /// When idempotent calls are tried again. Default is [`Retries::default`].
    pub fn retries(mut self, retries: Retries) -> Self {
        self.settings.retries = retries;
        self
    }

    /// Hedged requests for idempotent calls; `None` turns them off.
    /// Default is on, with [`Hedging::default`].
    pub fn hedging(mut self, hedging: Option<Hedging>) -> Self {
        self.settings.hedging = hedging;
        self
    }

    /// Limits per instance. Default is [`Limits::default`]: none.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.settings.limits = limits;
        self
    }

    /// Slow start for instances that join once the client is in use, or
    /// come back from an open breaker (see [`SlowStart`]). Default is
    /// `None`: a new instance is weighed as a warm one.
    pub fn slow_start(mut self, slow_start: Option<SlowStart>) -> Self {
        self.settings.slow_start = slow_start;
        self
    }

    /// Whether the latency-aware balancer weighs the load instances
    /// report on their answers (ORCA's `endpoint-load-metrics`, as
    /// [`OverloadLayer`](crate::overload::OverloadLayer) writes it): an
    /// instance's report counts once it has reported for 10 s and until
    /// it is 3 min old (gRFC A58's blackout and expiry). Default is
    /// `true`; instances that send no reports are weighed as before.
    pub fn load_reports(mut self, on: bool) -> Self {
        self.settings.load_reports = on;
        self
    }

    /// How a call chooses its instance. Default is
    /// [`Balancing::LeastLoaded`] (latency-aware).
    pub fn balancing(mut self, balancing: Balancing) -> Self {
        self.settings.balancing = balancing;
        self
    }

    /// The caller's own zone: instances whose `zone` metadata names it are
    /// preferred (see [`zone`](super::zone)). Default is `None`: every
    /// zone alike.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.settings.zone = Some(zone.into());
        self
    }

    /// The name of the client's own site (data center): the site of the
    /// resolver's registry. Only for snapshots (each instance says its
    /// site). Default is `None`.
    pub fn site(mut self, name: impl Into<String>) -> Self {
        self.settings.site = Some(name.into());
        self
    }

    /// Another site, `name`, whose registry `resolver` reads: the service
    /// resolved there takes the calls the client's own site can't (none
    /// of its instances admits one), and the spill-over when the own site
    /// is degraded; nearest site first (see [`site`](super::site)).
    /// Repeat for more sites.
    pub fn remote_site(self, name: &str, resolver: &Resolver) -> Self {
        let Ok(view) = &self.view else {
            return self;
        };
        let there = resolver.service(view.service());
        self.remote_site_view(RemoteSite::new(name, there))
    }

    /// The same for a view of one's own making (e.g. a
    /// [`ServiceView::fixed`] list).
    pub fn remote_site_view(mut self, site: RemoteSite) -> Self {
        let mut sites = self.settings.remote_sites.to_vec();
        sites.push(site);
        self.settings.remote_sites = Arc::from(sites);
        self
    }

    /// Call only instances whose server certificate names this service
    /// (a URI SAN `spiffe://beacon/service/<service>` or a DNS SAN
    /// `<service>`, as `beacon-certs` issues): one showing another
    /// service's certificate, however valid, or speaking plain HTTP, fails
    /// the attempt with [`ClientError::IdentityMismatch`] before any
    /// request is sent; its breaker counts it and the call is retried
    /// elsewhere. Checked once per connection. Default is `false`.
    pub fn verify_identity(mut self, on: bool) -> Self {
        self.settings.verify_identity = on;
        self
    }

    /// How instances are reached over HTTP(S): TLS, connect timeout,
    /// HTTP/2. Default is [`HttpTransport::builder`] with the resolver's TLS.
    pub fn http(mut self, http: HttpTransportBuilder) -> Self {
        self.http = http;
        self
    }

    /// The client, over HTTP(S). Fails only for a service name that
    /// breaks the naming rule.
    pub fn build(self) -> Result<ServiceClient, ClientError> {
        let Self {
            view,
            settings,
            http,
        } = self;
        let view = view?;
        let http = match settings.verify_identity {
            true => http.expect_identity(Some(view.service().as_str())),
            false => http,
        };
        Ok(ServiceClient::compose(view, settings, http.build()))
    }

    /// The client, reaching instances over `transport` instead (e.g. an
    /// in-memory service, in tests); the [`http`](Self::http) settings
    /// are not used.
    pub fn build_with<T: Transport>(self, transport: T) -> Result<ServiceClient<T>, ClientError> {
        Ok(ServiceClient::compose(self.view?, self.settings, transport))
    }
}
