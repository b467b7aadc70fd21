//! Lease deadlines as plain numbers.

use std::time::Duration;
use tokio::time::Instant;

/// Converts between tokio instants and milliseconds since the clock was made.
///
/// Deadlines are kept as `u64` milliseconds so that a heartbeat can renew a
/// lease with one atomic store, without taking a write lock. Going through
/// tokio's `Instant` keeps the whole expiry machinery testable under a paused
/// clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since the clock was made.
    pub fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    /// The instant `ms` milliseconds after the clock was made.
    pub fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

pub(super) use beacon_net::clock::{millis, wall_clock_ms};
