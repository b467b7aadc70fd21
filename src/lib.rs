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
//! * [`wire`]: the registry's HTTP API as Rust types, with the validation
//!   rules for names, addresses, TTLs and blocking queries — the
//!   `beacon-wire` crate, which the registry uses too, so the two sides
//!   cannot drift apart (and the registry does not link this library).
//! * [`registry`]: a typed registry client with failover across URLs.
//! * [`lease`]: the service side — register, heartbeat, re-register, deregister.
//! * [`resolver`]: the client side — one long-polled view per service,
//!   kept on last-known data while the registry is away.
//! * [`breaker`]: the per-instance circuit breaker, a pure state machine.
//! * [`health`]: active health checks that bring an open instance back as
//!   soon as it answers.
//! * [`endpoint`]: one instance as a caller sees it: breaker, latency
//!   estimate, calls in flight, record.
//! * [`latency`]: the peak-sensitive moving average the balancer ranks
//!   instances by.
//! * [`client`]: [`ServiceClient`] and the tower parts it is composed of —
//!   a balancer over the view, a breaker gate per instance, an attempt
//!   (timeout and verdict), a retry policy, a pluggable transport, and the
//!   view as a `Discover` stream for tower's own balancers.
//! * [`deadline`]: a call's budget carried to the instance
//!   (`beacon-deadline-ms`), and the server-side layer that refuses spent
//!   budgets and gives a handler's own calls what is left.
//! * [`events`]: events and snapshots for logs and dashboards.
//! * [`metrics`]: the client's Prometheus metrics, read at scrape time.
//! * [`backoff`], [`transport`]: the small shared pieces (from `beacon-wire`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod breaker;
pub mod client;
pub mod deadline;
pub mod endpoint;
pub mod events;
pub mod health;
pub mod latency;
pub mod lease;
pub mod metrics;
pub mod registry;
pub mod resolver;

/// The registry API's types (the `beacon-wire` crate), as the registry
/// speaks them.
pub use beacon_wire as wire;
pub use beacon_wire::{backoff, transport};

pub use breaker::{BreakerConfig, BreakerState, FailureRate};
pub use client::{Balancing, ClientConfig, ClientError, Hedging, ServedBy, ServiceClient};
pub use events::{Event, EventKind, InstanceSnapshot, ServiceSnapshot};
pub use health::HealthCheckConfig;
pub use lease::{Lease, LeaseStatus, NotRegistered};
pub use registry::{RegistryClient, RegistryClientConfig, RegistryError};
pub use resolver::{Resolver, ResolverConfig, ServiceView};
