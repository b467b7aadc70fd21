//! The plumbing every Beacon process shares — the `beacon` library, the
//! `beacon-registry` server (with its etcd client), the demo services and
//! the benchmarks: how to reach a server over HTTP(S), not what is said to
//! it (that is `beacon-wire`'s).
//!
//! # Layout
//!
//! * [`http`]: the pooled HTTP(S) client and its connector, the one
//!   bounded body read, error chains for people to read;
//! * [`tls`]: what a client trusts (Mozilla's roots plus your CA) and
//!   presents (mutual TLS), with rustls;
//! * [`identity`]: the names a peer's certificate carries, and whether
//!   they name a service (`spiffe://beacon/service/<name>` or a DNS SAN);
//! * [`failover`]: one call tried across equivalent servers (registry
//!   replicas, etcd members), from the one that answered last;
//! * [`backoff`]: capped exponential backoff with jitter;
//! * [`clock`]: wall-clock milliseconds, the one way every crate reads them.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod backoff;
pub mod clock;
pub mod failover;
pub mod http;
pub mod identity;
pub mod tls;
