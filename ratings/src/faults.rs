//! Injected faults: a delay before every answer (its work), a share of
//! answers turned into 500s, a capacity (answers served at once; the rest
//! queue) and a warm-up (answers 5× slower for a while) — set at start-up
//! (`--delay-ms`, `--fail-percent`, `--capacity`, `--warmup-ms`) and
//! changed while the instance runs (`PUT /_faults`).

use crate::wire::FaultSettings;
use rand::Rng;
use std::{
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};
use tokio::{sync::Semaphore, time::Instant};

/// Longest injectable delay: ten minutes.
pub const MAX_DELAY: Duration = Duration::from_secs(600);

/// Longest warm-up: an hour.
pub const MAX_WARMUP: Duration = Duration::from_secs(3600);

/// Most answers served at once that a capacity may name.
pub const MAX_CAPACITY: u32 = 100_000;

/// How much slower an answer is while the instance warms up.
pub const WARMUP_SLOWDOWN: u32 = 5;

/// The least work an answer has while warming up (an instance with no
/// delay is still cold).
const MIN_WARMUP_WORK: Duration = Duration::from_millis(1);

/// What to inject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Added before every rating answer: its work.
    pub delay: Duration,
    /// Percentage (0..=100) of rating requests answered with a 500.
    pub fail_percent: u8,
    /// Rating answers worked on at once; the others wait their turn
    /// (0: no limit).
    pub capacity: u32,
    /// How long answers stay [`WARMUP_SLOWDOWN`]× slower after the instance
    /// starts or this is set.
    pub warmup: Duration,
}

impl Faults {
    /// An answer's work as of `elapsed` since these faults were put in
    /// force: the delay, or 5× it (at least 5 ms) while warming up.
    fn work(&self, elapsed: Duration) -> Duration {
        if elapsed < self.warmup {
            self.delay.max(MIN_WARMUP_WORK) * WARMUP_SLOWDOWN
        } else {
            self.delay
        }
    }

    /// Whether an answer should fail, drawn at `fail_percent`.
    fn draw_failure(&self) -> bool {
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
        if settings.capacity > MAX_CAPACITY {
            return Err(format!(
                "capacity {} is over the most, {MAX_CAPACITY}",
                settings.capacity
            ));
        }
        let warmup = Duration::from_millis(settings.warmup_ms);
        if warmup > MAX_WARMUP {
            return Err(format!(
                "warmup_ms {} is over the most, {}",
                settings.warmup_ms,
                MAX_WARMUP.as_millis()
            ));
        }
        Ok(Self {
            delay,
            fail_percent: settings.fail_percent,
            capacity: settings.capacity,
            warmup,
        })
    }
}

impl From<Faults> for FaultSettings {
    fn from(faults: Faults) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            delay_ms: ms(faults.delay),
            fail_percent: faults.fail_percent,
            capacity: faults.capacity,
            warmup_ms: ms(faults.warmup),
        }
    }
}

/// The faults in force, changeable while requests read them. A read is an
/// uncontended read lock and a pointer copy: nothing is held across the
/// injected delay.
#[derive(Debug)]
pub struct FaultSwitch {
    current: RwLock<InForce>,
}

/// Faults put in force, when, and the seats their capacity gives.
#[derive(Debug, Clone)]
struct InForce {
    faults: Faults,
    since: Instant,
    /// One permit per answer served at once; `None`: no limit. A new
    /// capacity makes new seats: answers seated on the old ones finish
    /// there.
    seats: Option<Arc<Semaphore>>,
}

impl InForce {
    fn new(faults: Faults) -> Self {
        Self {
            faults,
            since: Instant::now(),
            seats: (faults.capacity > 0)
                .then(|| Arc::new(Semaphore::new(faults.capacity as usize))),
        }
    }
}

impl FaultSwitch {
    /// Starting with `faults` (a warm-up counts from now).
    pub fn new(faults: Faults) -> Self {
        Self {
            current: RwLock::new(InForce::new(faults)),
        }
    }

    /// The faults now.
    pub fn get(&self) -> Faults {
        self.in_force().faults
    }

    /// Puts `faults` in force for the requests that start from now on (a
    /// warm-up counts from now).
    pub fn set(&self, faults: Faults) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = InForce::new(faults);
    }

    /// Serves one answer's faults: waits for a seat (capacity), does the
    /// work (the delay, slower while warming up), then says whether this
    /// answer should fail.
    pub async fn apply(&self) -> bool {
        let InForce {
            faults,
            since,
            seats,
        } = self.in_force();
        // A semaphore never closed: `acquire` can't fail.
        let _seat = match &seats {
            Some(seats) => seats.acquire().await.ok(),
            None => None,
        };
        let work = faults.work(since.elapsed());
        if !work.is_zero() {
            tokio::time::sleep(work).await;
        }
        faults.draw_failure()
    }

    fn in_force(&self) -> InForce {
        // Plain data: a poisoned lock still holds a whole value.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Default for FaultSwitch {
    fn default() -> Self {
        Self::new(Faults::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_bounds_are_refused_by_name() {
        let refused = |settings: FaultSettings, name: &str| {
            let error = Faults::try_from(settings).expect_err(name);
            assert!(error.contains(name), "{error}");
        };
        let none = FaultSettings::default();
        refused(
            FaultSettings {
                delay_ms: 600_001,
                ..none
            },
            "delay_ms 600001",
        );
        refused(
            FaultSettings {
                fail_percent: 101,
                ..none
            },
            "fail_percent 101",
        );
        refused(
            FaultSettings {
                capacity: MAX_CAPACITY + 1,
                ..none
            },
            "capacity 100001",
        );
        refused(
            FaultSettings {
                warmup_ms: 3_600_001,
                ..none
            },
            "warmup_ms 3600001",
        );
        let fine = FaultSettings {
            delay_ms: 200,
            fail_percent: 30,
            capacity: 4,
            warmup_ms: 10_000,
        };
        let faults = Faults::try_from(fine).expect("in bounds");
        assert_eq!(FaultSettings::from(faults), fine);
    }

    #[tokio::test(start_paused = true)]
    async fn past_its_capacity_answers_queue_and_take_turns() {
        let switch = Arc::new(FaultSwitch::new(Faults {
            delay: Duration::from_millis(5),
            capacity: 2,
            ..Faults::default()
        }));
        let started = Instant::now();
        let answers: Vec<_> = (0..6)
            .map(|_| {
                let switch = Arc::clone(&switch);
                tokio::spawn(async move {
                    switch.apply().await;
                    started.elapsed()
                })
            })
            .collect();
        let mut took = Vec::new();
        for answer in answers {
            took.push(answer.await.expect("joined"));
        }
        took.sort();
        // Two at a time, 5 ms each: three turns.
        let ms: Vec<u128> = took.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [5, 5, 10, 10, 15, 15]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_warming_instance_is_five_times_slower_until_its_warmup_ends() {
        let switch = FaultSwitch::new(Faults {
            delay: Duration::from_millis(4),
            warmup: Duration::from_millis(100),
            ..Faults::default()
        });
        let timed = || async {
            let started = Instant::now();
            switch.apply().await;
            started.elapsed()
        };
        assert_eq!(timed().await, Duration::from_millis(20));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(timed().await, Duration::from_millis(4));
        // Set anew: cold again, and with no delay, still slower.
        switch.set(Faults {
            warmup: Duration::from_millis(100),
            ..Faults::default()
        });
        assert_eq!(timed().await, Duration::from_millis(5));
    }
}
