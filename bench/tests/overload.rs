//! The scenarios of full instances in `make bench`, at a small size: real
//! ratings instances made full, Beacon's callers beside HAProxy and nginx.
//! Checks what each caller did, not how fast (speed targets live in
//! `make bench`). One at a time: each keeps the machine busy.

use beacon_bench::overload::{markdown, measure, retry_storm, slow_start, uneven};
use std::time::Duration;
use tokio::sync::Mutex;

/// Held by each test while it runs: two at once would measure each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_is_measured_against_full_instances() {
    let _turn = ONE_AT_A_TIME.lock().await;
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
    // The adaptive run's limits were sampled, one line per instance, and
    // each learned something below its default of 20 for instances that
    // serve 4 at once.
    assert_eq!(measured.limits.len(), 3, "{:?}", measured.limits);
    for (instance, points) in &measured.limits {
        let last = points.last().map(|(_, limit)| *limit);
        assert!(last.is_some_and(|l| l < 20.0), "{instance}: {points:?}");
    }
    let section = markdown(&measured);
    for name in names {
        assert!(section.contains(&format!("| {name} |")), "{section}");
    }
    assert!(section.contains("maxconn 4"), "HAProxy's config is shown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_costly_instance_gets_fewer_calls_from_beacon() {
    let _turn = ONE_AT_A_TIME.lock().await;
    beacon_testkit::binary("beacon-registry");
    let measured = uneven::measure(Duration::from_secs(2), Duration::from_secs(1))
        .await
        .expect("the scenario runs");
    assert!(measured.capacities.iter().all(|c| *c > 0.0), "{measured:?}");
    // Twice as costly: it gives fewer answers a second kept full.
    assert!(
        measured.capacities[0] < measured.capacities[1],
        "{measured:?}"
    );
    let names: Vec<&str> = measured.runs.iter().map(|r| r.contender).collect();
    assert_eq!(
        names,
        [
            "beacon",
            "beacon, pure p2c",
            "haproxy, leastconn",
            "nginx, least_conn"
        ]
    );
    for run in &measured.runs {
        assert_eq!(run.utilization.len(), 3, "{run:?}");
        assert!(run.utilization.iter().all(|u| *u > 0.0), "{run:?}");
    }
    // Latency-aware: Beacon sends the costly instance fewer calls than
    // either other (its answers a second are its utilization × capacity).
    for run in &measured.runs[..2] {
        let answers: Vec<f64> = run
            .utilization
            .iter()
            .zip(&measured.capacities)
            .map(|(u, c)| u * c)
            .collect();
        assert!(
            answers[0] < answers[1] && answers[0] < answers[2],
            "{}: {answers:?}",
            run.contender
        );
    }
    let section = uneven::markdown(&measured);
    assert!(section.contains("| beacon, pure p2c |"), "{section}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_joins_cold_is_used_once_it_warms() {
    let _turn = ONE_AT_A_TIME.lock().await;
    beacon_testkit::binary("beacon-registry");
    let timing = slow_start::Timing {
        join_at: Duration::from_secs(1),
        warmup: Duration::from_secs(2),
        after: Duration::from_secs(5),
    };
    let result = slow_start::measure(timing)
        .await
        .expect("the scenario runs");
    let names: Vec<&str> = result.runs.iter().map(|r| r.contender).collect();
    assert_eq!(names, ["beacon, slow start", "beacon, without"]);
    for run in &result.runs {
        assert!(run.steady.requests > 0, "{run:?}");
        // It joined, and once warm it took calls: its share in the last
        // second (two past its warm-up) is above nothing.
        let last = run.share.last().map(|(_, share)| *share);
        assert!(last.is_some_and(|s| s > 0.0), "{run:?}");
    }
    let dir = std::env::temp_dir().join(format!("beacon-slow-start-{}", std::process::id()));
    slow_start::plot(&result, &dir.join(slow_start::PLOT)).expect("plotted");
    let svg = std::fs::read_to_string(dir.join(slow_start::PLOT)).expect("the plot");
    assert!(svg.contains("slow-start curve"), "the curve is drawn");
    let _ = std::fs::remove_dir_all(dir);
    assert!(slow_start::markdown(&result).contains("| beacon, without |"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shedding_everywhere_is_not_amplified_nor_a_breaker_failure() {
    let _turn = ONE_AT_A_TIME.lock().await;
    beacon_testkit::binary("beacon-registry");
    let length = Duration::from_secs(2);
    // 20 ms answers: a fourth of the calls make them full, which debug
    // binaries on a busy machine serve without timing out.
    let storm = retry_storm::measure(length, 20)
        .await
        .expect("the scenario runs");
    let runs = &storm.runs;
    let names: Vec<&str> = runs.iter().map(|r| r.contender).collect();
    assert_eq!(
        names,
        [
            "beacon",
            "beacon, adaptive",
            "haproxy, retry-on 503",
            "nginx, next_upstream http_503"
        ]
    );
    for run in &runs[..2] {
        // The instances shed (offered twice what they give)...
        assert!(run.summary.errors > 0, "{run:?}");
        assert!(run.received > 0, "{run:?}");
        // ...and no retry storm: at most a fifth more attempts than calls,
        // plus the retry and hedge budgets' floors (15 a second).
        let floor = 15 * length.as_secs();
        let most = run.summary.requests as u64 * 6 / 5 + floor;
        assert!(run.received <= most, "{run:?}: {} > {most}", run.received);
        // A full instance is not a broken one.
        assert_eq!(run.breakers_opened, Some(0), "{run:?}");
    }
    assert!(retry_storm::markdown(&storm).contains("| nginx, next_upstream http_503 |"));
}
