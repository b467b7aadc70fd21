//! The live panel: the ratings instances as the market's client sees them
//! — breakers, latency, calls in flight, each one's share of traffic, who
//! served last — and the library's events, pushed to the page as they
//! happen.
//!
//! * [`status`]: the panel's data (`GET /api/status`).
//! * [`traffic`]: each instance's share of recent calls.
//! * [`event_log`]: the library's events, remembered for pages opened later.
//! * [`live`]: Server-Sent Events (`GET /api/events`).

pub mod event_log;
pub mod live;
pub mod status;
pub mod traffic;
