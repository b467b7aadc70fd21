//! `beacon-ratings`: the demo's backend service.
//!
//! Serves star ratings for the market's four things and keeps itself
//! registered in the registry as service `ratings`, id `ratings-N`, through a
//! [`beacon::SharedLease`] (the process's one lease). Fault injection (`--delay-ms`, `--fail-percent` at start,
//! `PUT /_faults` while it runs) makes it a slow or flaky instance on demand,
//! for demos, tests and benchmarks.
//!
//! # Layout
//!
//! * [`catalog`]: the ratings themselves.
//! * [`faults`]: injected delay and failures, changeable at run time.
//! * [`http`]: the router and its handlers.
//! * [`server`]: serve + lease + graceful shutdown (deregister first, then drain).
//! * [`wire`]: the answers' types — the `beacon-ratings-api` crate, which
//!   callers link instead of this server.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod catalog;
pub mod faults;
pub mod http;
pub mod server;
/// The answers' types (the `beacon-ratings-api` crate), shared with the market
/// and the tools that read them.
pub use beacon_ratings_api as wire;
