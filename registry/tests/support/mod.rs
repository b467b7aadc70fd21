//! Helpers of the registry's integration tests (beacon-testkit's).

#![allow(dead_code, unused_imports)] // each test binary uses a different subset

pub use beacon_testkit::*;

/// Lets other tasks (the expiry task) run until `done` holds, without the
/// paused clock moving: the test task stays runnable, so tokio never
/// auto-advances. Fails clearly, rather than hanging or passing by luck,
/// if `done` does not hold within a bounded number of scheduler turns.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let at = tokio::time::Instant::now();
    for _ in 0..100_000 {
        if done() {
            assert_eq!(
                tokio::time::Instant::now(),
                at,
                "the clock moved while waiting for {what}"
            );
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{what}: still not so after 100000 scheduler turns at {at:?}");
}
