//! `beacon-registry`: the registry that tracks heartbeating service instances.
//!
//! Services register an address under a service name with a lease (TTL) and
//! renew it by heartbeating; clients resolve a name to the live instances and
//! long-poll for changes. The API is described in the repository's README and
//! typed in `beacon-wire` (the contract crate the client library uses too).
//!
//! # Layout
//!
//! * [`store`]: the [`Store`](store::Store) trait; the in-memory store,
//!   with its catalog (members, indexes, watchers) and deadline-driven
//!   expiry; and the etcd store, where replicas share state through etcd
//!   (a client for its v3 JSON gateway, a watch-fed catalog, leases).
//! * [`http`]: the axum router: routes, auth, extractors, [`AppError`](http::error::AppError).
//! * [`acl`]: who may write what (`--acl`): tokens scoped to services.
//! * [`metrics`]: Prometheus metrics.
//! * [`subset`]: deterministic subsets of a service's instances per
//!   watching client.
//! * [`server`]: binds, serves and shuts down gracefully; what `main` calls.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod acl;
pub mod http;
pub mod metrics;
pub mod server;
pub mod store;
pub mod subset;
