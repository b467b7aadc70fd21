//! Scaffolding shared by Beacon's binaries (registry, ratings, market), so
//! each of them starts, logs, fails and stops the same way.
//!
//! # Layout
//!
//! * [`logging`]: one `tracing` setup for every binary.
//! * [`signal`]: waiting for SIGINT/SIGTERM.
//! * [`net`]: binding a listener with an error that names the address.
//! * [`error`]: [`JsonError`](error::JsonError), the `{"error":{"code","message"}}` answer.
//! * [`metrics`]: request latency by route, for `/_metrics`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod signal;
