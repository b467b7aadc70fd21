//! The sites scenario of `make bench` at a small size: two sites of real
//! processes; site a's ratings paused and resumed under a Beacon client of
//! site a that knows site b. Checks what the client did — no failed call,
//! over to site b while a was silent, home again after — not how fast
//! (the speed targets live in `make bench`).

use beacon_bench::sites::{markdown, measure, Timing};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_site_fails_over_and_comes_home() {
    beacon_testkit::binary("beacon-registry");
    let timing = Timing {
        stop_at: Duration::from_millis(1500),
        resume_at: Duration::from_millis(4500),
        length: Duration::from_secs(8),
    };
    let run = measure(timing).await.expect("the scenario runs");
    assert!(run.calls > 1_000, "{run:?}");
    assert_eq!(run.failed, 0, "{run:?}");
    assert!(run.crossed_while_healthy < 0.05, "{run:?}");
    assert!(run.failover.is_some(), "never over to site b: {run:?}");
    assert!(run.back_home.is_some(), "never home again: {run:?}");
    assert!(markdown(&run).contains("| beacon, remote site b |"));
}
