//! Beacon's contract: the registry's HTTP API (v1) as Rust types — what
//! both sides of it, the `beacon` client library and the `beacon-registry`
//! server, say to each other, and nothing of how they reach each other
//! (that is `beacon-net`'s). The registry depends on this crate, not on
//! the client.
//!
//! # Layout
//!
//! Everything that crosses the wire between the registry and its clients is
//! defined here once:
//!
//! * [`names`]: validated service names, instance ids and addresses;
//! * [`body`]: request and response bodies;
//! * [`changes`]: what changed in a service after an index;
//! * [`lease`]: shared leases that many instances live on;
//! * [`query`]: the blocking-query parameters (`index`, `wait`);
//! * [`error`]: the error body and its machine-readable codes.
//!
//! Raw request bodies ([`RegisterRequest`]) deserialize leniently and are then
//! checked with [`RegisterRequest::validate`], so that a bad field is reported
//! with its own code (`invalid_address`, `invalid_ttl`) rather than as a
//! generic JSON error.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod body;
pub mod changes;
pub mod error;
pub mod lease;
pub mod names;
pub mod query;

pub use body::{
    Instance, Metadata, RegisterRequest, Registration, ServiceInstances, ServiceList,
    ServiceSummary, DC, DEFAULT_TTL, MAX_METADATA_BYTES, MAX_TTL, MIN_TTL, ZONE,
};
pub use changes::{Change, ChangeOp, ServiceChanges, SubsetSize};
pub use error::{ErrorBody, ErrorCode, ErrorDetail, WireError};
pub use lease::{GrantRequest, LeaseGrant, LeaseStatus};
pub use names::{Address, InstanceId, LeaseId, ServiceName};
pub use query::{
    format_wait, HeartbeatQuery, StreamQuery, SubsetQuery, WatchQuery, DEFAULT_WAIT, MAX_SUBSET,
    MAX_WAIT, MIN_STREAM_WAIT,
};

/// Header carrying a service's index on resolve answers, so a client can
/// long-poll without parsing the body first.
pub const INDEX_HEADER: &str = "x-beacon-index";

/// Largest request body the registry accepts (64 KiB); larger bodies get a
/// `413 payload_too_large`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
