//! When an instance is full, not broken: the server's side of overload.
//!
//! A saturated instance is slow because callers send more than it can
//! serve, and every balancer, retry and hedge then adds load exactly when
//! there is none to spare. Two signals let its callers know before its
//! queue grows:
//!
//! * **Shedding.** [`OverloadLayer`] in front of a service's handlers
//!   serves at most `max_in_flight` requests at once; the next one is
//!   answered at once with 503, the JSON error body with code `overloaded`
//!   and `Retry-After: 1` — nothing of it is done. A Beacon client takes
//!   that answer as *busy*: it tries another instance and lowers its
//!   limit for this one, and it does not count it against the instance's
//!   breaker (a full instance is alive; opening its breaker would move its
//!   load onto the others, which are as full).
//! * **Load reports.** Every answer that passes the layer carries ORCA's
//!   [`LOAD_METRICS_HEADER`] (`endpoint-load-metrics: TEXT
//!   cpu_utilization=…, application_utilization=…, rps_fractional=…`), as
//!   gRPC's weighted round robin and Envoy read it: the process's CPU
//!   use, its requests in flight as a share of its limit, and the
//!   requests it answered per second. [`LoadReport`] reads and writes it,
//!   on both sides.
//!
//! The figures are measured over the last tenth of a second and made into
//! the header once per tenth: an answer costs an atomic add and a header
//! copy, not a format.

mod report;
mod shed;

pub use report::{LoadReport, LOAD_METRICS_HEADER};
pub use shed::{Overload, OverloadLayer, OverloadMetrics};
