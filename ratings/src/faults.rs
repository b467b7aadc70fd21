//! Injected faults: a fixed delay before every answer, and a share of
//! answers turned into 500s.

use rand::Rng;
use std::time::Duration;

/// What to inject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Added before every rating answer.
    pub delay: Duration,
    /// Percentage (0..=100) of rating requests answered with a 500.
    pub fail_percent: u8,
}

impl Faults {
    /// Waits out the delay, then says whether this request should fail.
    pub async fn apply(&self) -> bool {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        match self.fail_percent {
            0 => false,
            p if p >= 100 => true,
            p => rand::rng().random_range(0..100u8) < p,
        }
    }
}
