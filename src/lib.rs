//! Beacon: client-side service discovery with per-instance circuit breakers.
//!
//! A **registry** (the `beacon-registry` binary) tracks service instances that
//! heartbeat into it. Callers resolve a service name through the registry and
//! spread their requests over the live instances themselves — there is no
//! proxy hop in the request path.
//!
//! # Layout
//!
//! * [`wire`]: the registry's HTTP API as Rust types — request and response
//!   bodies, error codes, and the validation rules for names, addresses, TTLs
//!   and blocking-query parameters. The registry and every client use these
//!   same types, so the two sides cannot drift apart.
//!
//! The client half (leases, watched resolution, breakers, balancing, retries)
//! builds on these types.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod wire;
