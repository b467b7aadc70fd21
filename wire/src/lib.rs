//! Beacon's contract: the registry's HTTP API (v1) as Rust types, and the
//! plumbing that both sides of it — the `beacon` client library and the
//! `beacon-registry` server (with its etcd client) — share. The registry
//! depends on this crate, not on the client.
//!
//! # Layout
//!
//! Everything that crosses the wire between the registry and its clients is
//! defined here once:
//!
//! * [`names`]: validated service names, instance ids and addresses;
//! * [`body`]: request and response bodies;
//! * [`query`]: the blocking-query parameters (`index`, `wait`);
//! * [`error`]: the error body and its machine-readable codes.
//!
//! And the shared plumbing:
//!
//! * [`transport`]: the pooled HTTP(S) client, bounded body reads, error chains;
//! * [`tls`]: what a client trusts (Mozilla's roots plus your CA) and
//!   presents (mutual TLS), with rustls;
//! * [`failover`]: one call tried across equivalent servers (registry
//!   replicas, etcd members), from the one that answered last;
//! * [`backoff`]: capped exponential backoff with jitter;
//! * [`clock`]: wall-clock milliseconds, the one way every crate reads them.
//!
//! Raw request bodies ([`RegisterRequest`]) deserialize leniently and are then
//! checked with [`RegisterRequest::validate`], so that a bad field is reported
//! with its own code (`invalid_address`, `invalid_ttl`) rather than as a
//! generic JSON error.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod body;
pub mod clock;
pub mod error;
pub mod failover;
pub mod names;
pub mod query;
pub mod tls;
pub mod transport;

pub use body::{
    Instance, Metadata, RegisterRequest, Registration, ServiceInstances, ServiceList,
    ServiceSummary, DEFAULT_TTL, MAX_TTL, MIN_TTL, ZONE,
};
pub use error::{ErrorBody, ErrorCode, ErrorDetail, WireError};
pub use names::{Address, InstanceId, ServiceName};
pub use query::{format_wait, WatchQuery, DEFAULT_WAIT, MAX_WAIT};

/// Header carrying a service's index on resolve answers, so a client can
/// long-poll without parsing the body first.
pub const INDEX_HEADER: &str = "x-beacon-index";

/// Largest request body the registry accepts (64 KiB); larger bodies get a
/// `413 payload_too_large`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
