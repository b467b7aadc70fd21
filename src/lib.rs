//! Beacon: client-side service discovery with per-instance circuit breakers.
//!
//! A **registry** (the `beacon-registry` binary) tracks service instances that
//! heartbeat into it. Services keep themselves registered with a [`Lease`];
//! callers resolve a service name through a [`Resolver`] and spread requests
//! over the live instances with a [`ServiceClient`] — no proxy hop in the
//! request path.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use beacon::{ClientConfig, RegistryClient, Resolver, ResolverConfig, ServiceClient};
//! let registry = RegistryClient::from_list("http://127.0.0.1:8400", None)?;
//! let resolver = Resolver::new(registry, ResolverConfig::default());
//! let ratings = ServiceClient::new(&resolver, &"ratings".parse()?, ClientConfig::default());
//! let answer = ratings.get("/ratings/camera").await?;
//! println!("{}", String::from_utf8_lossy(answer.body()));
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! What a service needs is re-exported here; the modules are private but
//! for the four that are a tool of their own ([`client`], [`deadline`],
//! [`overload`], [`metrics`]). Top to bottom, as a call goes:
//!
//! * **Registering** — `lease`: the service side ([`Lease`]): register,
//!   heartbeat, re-register, deregister; [`SharedLease`]: one registry
//!   lease renewed once for every registration of a process.
//! * **Resolving** — `resolver`: one [`ServiceView`] per service, fed by
//!   the registry's stream of changes, kept on last-known data while the
//!   registry is away;
//!   `registry_client`: the typed registry client ([`RegistryClient`]),
//!   with failover across URLs; `health`: active checks that bring an
//!   open instance back as soon as it answers.
//! * **Calling** — [`client`]: [`ServiceClient`] and the tower parts it is
//!   made of, usable one by one. Its stack, outside in:
//!   - *the call*: the deadline over everything, then `RetryPolicy`
//!     (another instance, within attempts and a budget);
//!   - *the choice*: `Hedge` (a second attempt when the first is late),
//!     `FailFast` (no instance: an error at once), `Balance` (power of two
//!     choices over the view, `poll_ready` chooses, `call` spends);
//!   - *one instance*: `Attempt` (attempt timeout, verdict on the breaker)
//!     over a `Transport` (`HttpTransport`: hyper, pooled per instance).
//! * **Judging instances** — `endpoint`: one instance as a caller sees it
//!   (breaker, latency estimate, calls in flight); `breaker`: the circuit
//!   breaker, a pure state machine ([`BreakerConfig`]); `latency`: the
//!   peak-sensitive moving average the balancer ranks instances by;
//!   `limit`: the calls an instance can take at once, learned from its
//!   answers (Vegas), for clients with adaptive limits; `reported_load`:
//!   the utilization an instance reports on its answers, believed after a
//!   blackout and until it expires (gRFC A58).
//! * **Serving** — [`deadline`]: a call's budget carried to the instance
//!   (`beacon-deadline-ms`), and the server-side layer that refuses spent
//!   budgets and gives a handler's own calls what is left; [`overload`]:
//!   the layer that sheds past a concurrency limit (503 `overloaded`) and
//!   reports load on every answer (ORCA's `endpoint-load-metrics`).
//! * **Watching** — `events`: [`Event`]s (they display as the log lines)
//!   and snapshots for dashboards; [`metrics`]: Prometheus, read at scrape
//!   time.
//! * **Underneath** — [`wire`]: the registry API's types, which the
//!   registry uses too (the `beacon-wire` crate); [`net`]: how a server is
//!   reached — the HTTP(S) client, TLS, failover, backoff (`beacon-net`).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod breaker;
pub mod client;
pub mod deadline;
mod endpoint;
mod events;
mod health;
mod latency;
mod lease;
mod limit;
pub mod metrics;
pub mod overload;
mod registry_client;
mod reported_load;
mod resolver;

/// How Beacon reaches a server (the `beacon-net` crate): the HTTP(S) client,
/// TLS, failover across replicas, backoff.
pub use beacon_net as net;
/// The registry API's types (the `beacon-wire` crate), as the registry
/// speaks them.
pub use beacon_wire as wire;

pub use breaker::{BreakerConfig, BreakerState, FailureRate};
pub use client::{
    Attempts, Balancing, ClientConfig, ClientError, Hedging, Idempotent, Limits, Retries, ServedBy,
    ServiceClient, ServiceClientBuilder,
};
pub use events::{Event, EventKind, InstanceSnapshot, ServiceSnapshot};
pub use health::HealthCheckConfig;
pub use lease::{Lease, LeaseName, LeaseStatus, NotRegistered, SharedLease};
pub use registry_client::{ChangesStream, RegistryClient, RegistryClientConfig, RegistryError};
pub use resolver::{Resolver, ResolverConfig, ServiceView, Subset};
