//! Waiting on conditions with a deadline, for tests and tools: poll until
//! something holds (never a bare sleep), or check that something keeps
//! holding for a stated period.

use std::{future::Future, time::Duration};
use tokio::time::Instant;

/// Polls `check` every 20 ms until it returns `Some`, panicking with `what`
/// after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks `check` every 50 ms for `period` (and once more at its end),
/// panicking at the first `Err`. For claims that something does *not*
/// happen for a while (a breaker stays open, an instance does not lapse):
/// the period is the claim itself, not a guess at how long things settle.
pub async fn holds_for<F, Fut>(period: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let end = Instant::now() + period;
    loop {
        let last = Instant::now() >= end;
        if let Err(why) = check().await {
            panic!("{what} stopped holding before {period:?} had passed: {why}");
        }
        if last {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
