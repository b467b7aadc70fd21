//! Beacon's benchmarks: a load generator (also the `beacon-load` command),
//! the side-by-side comparison with
//! a bare client, HAProxy and nginx, the registry against etcd, and a
//! bounded chaos run against the demo topology.
//!
//! # Layout
//!
//! * [`load`]: the load generator (open and closed loop, per-request records).
//! * [`stats`]: summaries, percentiles, time buckets, recovery times.
//! * [`topology`]: registry and ratings instances as processes.
//! * [`proxies`]: HAProxy and nginx in front of them, configured.
//! * [`contenders`]: Beacon, the bare client, HAProxy and nginx, set up.
//! * [`detection`]: whether each contender's failure handling fired.
//! * [`faults`]: the faults inflicted (hang, crash, gray, flaky) and healed.
//! * [`scenarios`]: steady and fault runs for every contender, repeated.
//! * [`protocols`]: the steady run over HTTP/2 (h2c) and TLS.
//! * [`deep_chain`]: what deadline propagation saves the end of a chain
//!   when callers give up.
//! * [`cross_zone`]: the share of calls that leave the caller's zone.
//! * [`overload`]: full instances — adaptive limits against fixed caps,
//!   no cap, HAProxy's queue and nginx's `max_conns`; an uneven fleet, a
//!   cold instance joining, every instance shedding.
//! * [`sites`]: a whole site's ratings stop and resume; the client of
//!   that site fails over to the other and comes home.
//! * [`registry_bench`]: the registry against etcd (gateway and gRPC).
//! * [`store_costs`]: the registry's etcd store against its memory store.
//! * [`report`]: BENCHMARKS.md and the JSON results.
//! * [`plots`]: the hang timeline and the gray traffic-share plots.
//! * [`chaos`]: the bounded chaos run against the demo's topology.
//! * [`partitions`]: partitions between real hosts (network namespaces)
//!   under market load (`make faults`).
//! * [`stress`]: concurrent writes through two market replicas on one
//!   store, and the check that none was lost.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod chaos;
pub mod contenders;
pub mod cross_zone;
pub mod deep_chain;
pub mod detection;
pub mod faults;
pub mod load;
pub mod overload;
pub mod partitions;
pub mod plots;
pub mod protocols;
pub mod proxies;
pub mod registry_bench;
pub mod report;
pub mod scenarios;
pub mod sites;
pub mod stats;
pub mod store_costs;
pub mod stress;
pub mod topology;
