//! Scaffolding shared by Beacon's binaries (registry, ratings, market), so
//! each of them starts, logs, fails and stops the same way.
//!
//! # Layout
//!
//! * [`auth`]: the bearer-token check for guarded writes.
//! * [`logging`]: one `tracing` setup for every binary.
//! * [`signal`]: waiting for SIGINT/SIGTERM.
//! * [`cli`]: command-line pieces (`--registry` parsing, start-up failures).
//! * [`net`]: binding a listener with an error that names the address.
//! * [`error`]: [`JsonError`](error::JsonError), the `{"error":{"code","message"}}` answer.
//! * [`metrics`]: request latency by route, for `/_metrics`.
//! * [`process`]: starting a Beacon binary as a child and learning its address (tests, tools).
//! * [`etcd`]: real etcd clusters on loopback (tests, benchmarks).
//! * [`netns`]: a network of real hosts (namespaces on a bridge) with
//!   partitions (tests, `make faults`).
//! * [`wait`]: polling a condition with a deadline (tests, tools).
//! * [`tls`]: serving HTTPS (and requiring client certificates) with rustls.
//! * [`identity`]: a peer's certificate names, and whether they name a
//!   service (`beacon-net`'s, re-exported: clients check servers by the
//!   same rule).
//! * [`serve`]: the serve loop every server uses, with a header timeout and
//!   a connection cap against floods.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod auth;
pub mod cli;
pub mod error;
pub mod etcd;
pub use beacon_net::identity;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod netns;
pub mod process;
pub mod serve;
pub mod signal;
pub mod tls;
pub mod wait;
