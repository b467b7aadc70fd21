//! Injected faults: a fixed delay before every answer, and a share of
//! answers turned into 500s — set at start-up (`--delay-ms`,
//! `--fail-percent`) and changed while the instance runs (`PUT /_faults`).

use crate::wire::FaultSettings;
use rand::Rng;
use std::{
    sync::{PoisonError, RwLock},
    time::Duration,
};

/// Longest injectable delay: ten minutes.
pub const MAX_DELAY: Duration = Duration::from_secs(600);

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

impl TryFrom<FaultSettings> for Faults {
    type Error = String;

    /// Checks the bounds, naming the value out of them.
    fn try_from(settings: FaultSettings) -> Result<Self, String> {
        let delay = Duration::from_millis(settings.delay_ms);
        if delay > MAX_DELAY {
            return Err(format!(
                "delay_ms {} is over the most, {}",
                settings.delay_ms,
                MAX_DELAY.as_millis()
            ));
        }
        if settings.fail_percent > 100 {
            return Err(format!(
                "fail_percent {} is not a percentage (0..=100)",
                settings.fail_percent
            ));
        }
        Ok(Self {
            delay,
            fail_percent: settings.fail_percent,
        })
    }
}

impl From<Faults> for FaultSettings {
    fn from(faults: Faults) -> Self {
        Self {
            delay_ms: u64::try_from(faults.delay.as_millis()).unwrap_or(u64::MAX),
            fail_percent: faults.fail_percent,
        }
    }
}

/// The faults in force, changeable while requests read them. A read is an
/// uncontended read lock of a `Copy` value: nothing is held across the
/// injected delay.
#[derive(Debug, Default)]
pub struct FaultSwitch {
    current: RwLock<Faults>,
}

impl FaultSwitch {
    /// Starting with `faults`.
    pub fn new(faults: Faults) -> Self {
        Self {
            current: RwLock::new(faults),
        }
    }

    /// The faults now.
    pub fn get(&self) -> Faults {
        // A plain `Copy` value: a poisoned lock still holds a whole one.
        *self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `faults` in force for the requests that start from now on.
    pub fn set(&self, faults: Faults) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = faults;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_bounds_are_refused_by_name() {
        let too_slow = FaultSettings {
            delay_ms: 600_001,
            fail_percent: 0,
        };
        let error = Faults::try_from(too_slow).expect_err("too slow");
        assert!(error.contains("delay_ms 600001"), "{error}");
        let not_a_share = FaultSettings {
            delay_ms: 0,
            fail_percent: 101,
        };
        let error = Faults::try_from(not_a_share).expect_err("101%");
        assert!(error.contains("fail_percent 101"), "{error}");
        let fine = FaultSettings {
            delay_ms: 200,
            fail_percent: 30,
        };
        let faults = Faults::try_from(fine).expect("in bounds");
        assert_eq!(FaultSettings::from(faults), fine);
    }
}
