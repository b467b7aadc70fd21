//! The overload scenario of `make bench` at a small size: real ratings
//! instances made full, Beacon's callers with no cap, a fixed cap and
//! adaptive limits, HAProxy and nginx beside them. Checks what each one
//! did, not how fast (speed targets live in `make bench`).

use beacon_bench::overload::{markdown, measure};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_is_measured_against_full_instances() {
    // Built (unless `make test` did), where the scenario looks for them.
    beacon_testkit::binary("beacon-registry");
    let measured = measure(Duration::from_secs(2))
        .await
        .expect("the scenario runs");
    assert!(measured.capacity > 0.0, "the instances answered nothing");
    let names: Vec<&str> = measured.runs.iter().map(|r| r.contender).collect();
    assert_eq!(
        names,
        [
            "beacon, no cap",
            "beacon, fixed cap 8",
            "beacon, adaptive",
            "beacon, adaptive, no hedging",
            "haproxy, maxconn 4 + queue",
            "nginx, max_conns 4"
        ]
    );
    for run in &measured.runs {
        assert!(run.answered.requests > 0, "{run:?}");
        // Offered three times what the instances can give: every caller
        // fails or refuses some of it.
        assert!(run.refused > 0, "{run:?}");
        assert!(run.answered.requests > run.refused, "{run:?}");
    }
    // The capped callers were answered, not only refused.
    for run in &measured.runs[1..] {
        assert!(run.goodput > 0.0, "{run:?}");
    }
    let section = markdown(&measured);
    for name in names {
        assert!(section.contains(&format!("| {name} |")), "{section}");
    }
    assert!(section.contains("maxconn 4"), "HAProxy's config is shown");
}
