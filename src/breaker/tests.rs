//! The breaker's state machine, on tokio's paused clock.

use super::*;
use tokio::time::advance;

fn config(threshold: u32) -> BreakerConfig {
    BreakerConfig {
        failure_threshold: threshold,
        open_for: Duration::from_secs(1),
        max_open_for: Duration::from_secs(4),
        jitter: 0.0,
        failure_rate: None,
        max_ejected: 0.5,
    }
}

fn fail(breaker: &mut Breaker) -> Option<Transition> {
    let (admission, _) = breaker.admit(Instant::now());
    breaker.record_failure(admission, Instant::now(), true)
}

#[tokio::test(start_paused = true)]
async fn opens_after_the_threshold_of_consecutive_failures() {
    let mut breaker = Breaker::new(config(3));
    assert_eq!(fail(&mut breaker), None);
    assert_eq!(fail(&mut breaker), None);
    // A success in between starts the count again.
    let (admission, _) = breaker.admit(Instant::now());
    breaker.record_success(admission);
    assert_eq!(fail(&mut breaker), None);
    assert_eq!(fail(&mut breaker), None);
    assert_eq!(
        fail(&mut breaker),
        Some(Transition::Opened(Duration::from_secs(1)))
    );
    assert_eq!(breaker.state(Instant::now()), BreakerState::Open);
    assert_eq!(breaker.admit(Instant::now()).0, Admission::Rejected);
}

#[tokio::test(start_paused = true)]
async fn half_opens_when_the_open_time_passes_and_admits_one_probe() {
    let mut breaker = Breaker::new(config(1));
    fail(&mut breaker);
    advance(Duration::from_millis(999)).await;
    assert_eq!(breaker.admit(Instant::now()), (Admission::Rejected, None));
    advance(Duration::from_millis(1)).await;
    assert_eq!(breaker.state(Instant::now()), BreakerState::HalfOpen);
    assert_eq!(
        breaker.admit(Instant::now()),
        (Admission::Probe, Some(Transition::HalfOpened))
    );
    for _ in 0..10 {
        assert_eq!(
            breaker.admit(Instant::now()).0,
            Admission::Rejected,
            "one probe only"
        );
    }
    assert_eq!(
        breaker.record_success(Admission::Probe),
        Some(Transition::Closed)
    );
    assert_eq!(breaker.admit(Instant::now()).0, Admission::Admitted);
}

#[tokio::test(start_paused = true)]
async fn failed_probes_double_the_open_time_up_to_the_cap() {
    let mut breaker = Breaker::new(config(1));
    let mut opened_for = Vec::new();
    if let Some(Transition::Opened(d)) = fail(&mut breaker) {
        opened_for.push(d);
    }
    for _ in 0..4 {
        let until = breaker.open_until().expect("open");
        tokio::time::advance(until - Instant::now()).await;
        let (admission, _) = breaker.admit(Instant::now());
        assert_eq!(admission, Admission::Probe);
        if let Some(Transition::Opened(d)) = breaker.record_failure(admission, Instant::now(), true)
        {
            opened_for.push(d);
        }
    }
    let secs: Vec<u64> = opened_for.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [1, 2, 4, 4, 4]);

    // A successful probe, then a quiet spell of twice the open time:
    // the next trip starts from the base open time again.
    tokio::time::advance(Duration::from_secs(4)).await;
    let (probe, _) = breaker.admit(Instant::now());
    breaker.record_success(probe);
    tokio::time::advance(Duration::from_secs(8)).await;
    assert_eq!(
        fail(&mut breaker),
        Some(Transition::Opened(Duration::from_secs(1)))
    );
    assert!(!breaker.is_flapping());
}

/// Opens `breaker` by a failure, waits out its open time and closes it by a
/// good probe; returns the open time.
async fn trip_and_recover(breaker: &mut Breaker) -> Duration {
    let Some(Transition::Opened(open_for)) = fail(breaker) else {
        panic!("did not open");
    };
    advance(open_for).await;
    let (probe, _) = breaker.admit(Instant::now());
    assert_eq!(probe, Admission::Probe);
    assert_eq!(breaker.record_success(probe), Some(Transition::Closed));
    open_for
}

#[tokio::test(start_paused = true)]
async fn an_instance_that_trips_again_soon_after_closing_stays_out_longer() {
    let mut breaker = Breaker::new(config(1));
    let mut open_times = Vec::new();
    for _ in 0..4 {
        open_times.push(trip_and_recover(&mut breaker).await.as_secs());
        // Fails again half a second after coming back: flapping.
        advance(Duration::from_millis(500)).await;
    }
    assert_eq!(open_times, [1, 2, 4, 4], "doubles, up to the cap");
    assert!(breaker.is_flapping());
}

#[tokio::test(start_paused = true)]
async fn health_checks_do_not_bring_back_a_flapping_instance_but_re_registering_does() {
    let mut breaker = Breaker::new(config(1));
    trip_and_recover(&mut breaker).await;
    fail(&mut breaker);
    assert!(breaker.is_flapping());
    assert_eq!(
        breaker.health_checked(true),
        None,
        "its /_health answering proves little"
    );
    assert_eq!(breaker.state(Instant::now()), BreakerState::Open);
    assert_eq!(breaker.registered_anew(), Some(Transition::HalfOpened));
    assert!(
        !breaker.is_flapping(),
        "a new process starts with a clean slate"
    );
}

/// One hang: the instance stops answering anything, so calls trip the
/// breaker and the health checks while it is open go unanswered; after
/// `hang` it answers again. Returns how long after it answered again the
/// breaker half-opened, checking every `interval` (the first a whole
/// interval after the opening, as the recovery task does).
async fn hang(breaker: &mut Breaker, hang: Duration, interval: Duration) -> Duration {
    assert!(matches!(fail(breaker), Some(Transition::Opened(_))));
    let answers_at = Instant::now() + hang;
    loop {
        advance(interval).await;
        let answered = Instant::now() >= answers_at;
        if breaker.health_checked(answered) == Some(Transition::HalfOpened) {
            let back = Instant::now() - answers_at;
            // The single probe (the recovery task sends it as a check).
            let (probe, _) = breaker.admit(Instant::now());
            assert_eq!(breaker.record_success(probe), Some(Transition::Closed));
            return back;
        }
        assert!(
            Instant::now() < answers_at + Duration::from_secs(60),
            "still open a minute after it answered"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn three_hangs_in_a_row_each_end_within_one_check_interval_of_answering() {
    // The market's settings: trip on one failure, 30 s open time.
    let mut breaker = Breaker::new(BreakerConfig {
        open_for: Duration::from_secs(30),
        max_open_for: Duration::from_secs(300),
        ..config(1)
    });
    let interval = Duration::from_secs(1);
    for n in 1..=3 {
        let back = hang(&mut breaker, Duration::from_secs(3), interval).await;
        assert!(back <= interval, "hang {n}: back {back:?} after answering");
        assert!(!breaker.is_flapping(), "hang {n}: a hang is not flapping");
        // The next pause comes 10 s later: "soon" by the open time's
        // measure, which is what made the old rule call it flapping.
        advance(Duration::from_secs(7)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_flaky_instance_whose_health_checks_pass_keeps_its_doubling_open_time() {
    let mut breaker = Breaker::new(config(1));
    trip_and_recover(&mut breaker).await;
    // Fails a call again right after its probe succeeded: suspect. Its
    // health checks keep answering: flapping.
    advance(Duration::from_millis(100)).await;
    assert_eq!(
        fail(&mut breaker),
        Some(Transition::Opened(Duration::from_secs(2))),
        "the open time doubles"
    );
    advance(Duration::from_millis(500)).await;
    assert_eq!(
        breaker.health_checked(true),
        None,
        "its /_health proves little"
    );
    assert!(breaker.is_flapping());
    assert_eq!(breaker.state(Instant::now()), BreakerState::Open);
    advance(Duration::from_millis(1500)).await;
    assert_eq!(breaker.state(Instant::now()), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn a_suspect_instance_whose_check_failed_while_open_is_recovering_and_starts_afresh() {
    let mut breaker = Breaker::new(config(1));
    trip_and_recover(&mut breaker).await;
    advance(Duration::from_millis(100)).await;
    fail(&mut breaker);
    assert!(
        breaker.is_flapping(),
        "suspect, and nothing says otherwise yet"
    );
    assert_eq!(breaker.health_checked(false), None);
    assert!(!breaker.is_flapping(), "its checks fail too: it is down");
    assert_eq!(breaker.health_checked(true), Some(Transition::HalfOpened));
    let (probe, _) = breaker.admit(Instant::now());
    breaker.record_success(probe);
    // The doubling ended with the hang: a trip long after is a first one.
    advance(Duration::from_secs(10)).await;
    assert_eq!(
        fail(&mut breaker),
        Some(Transition::Opened(Duration::from_secs(1)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_trip_long_after_the_last_one_is_a_first_trip() {
    let mut breaker = Breaker::new(config(1));
    trip_and_recover(&mut breaker).await;
    // Two open times (2 s) after it closed: not the same trouble.
    advance(Duration::from_secs(2)).await;
    assert_eq!(
        fail(&mut breaker),
        Some(Transition::Opened(Duration::from_secs(1)))
    );
    assert!(!breaker.is_flapping());
    assert_eq!(breaker.health_checked(true), Some(Transition::HalfOpened));
}

#[tokio::test(start_paused = true)]
async fn a_released_probe_lets_another_request_probe() {
    let mut breaker = Breaker::new(config(1));
    fail(&mut breaker);
    advance(Duration::from_secs(1)).await;
    assert_eq!(breaker.admit(Instant::now()).0, Admission::Probe);
    assert_eq!(breaker.admit(Instant::now()).0, Admission::Rejected);
    breaker.release_probe();
    assert_eq!(breaker.admit(Instant::now()).0, Admission::Probe);
}

#[tokio::test(start_paused = true)]
async fn re_registration_skips_the_rest_of_the_open_time() {
    let mut breaker = Breaker::new(config(1));
    fail(&mut breaker);
    assert_eq!(breaker.registered_anew(), Some(Transition::HalfOpened));
    assert_eq!(breaker.state(Instant::now()), BreakerState::HalfOpen);
    assert_eq!(breaker.admit(Instant::now()).0, Admission::Probe);
    // Re-registering a closed or half-open breaker changes nothing.
    assert_eq!(breaker.registered_anew(), None);
    let mut closed = Breaker::new(config(1));
    assert_eq!(closed.registered_anew(), None);
    assert_eq!(closed.state(Instant::now()), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn stale_outcomes_do_not_count() {
    let mut breaker = Breaker::new(config(1));
    // Two requests go out while closed; the first failure opens.
    let (first, _) = breaker.admit(Instant::now());
    let (second, _) = breaker.admit(Instant::now());
    assert!(breaker
        .record_failure(first, Instant::now(), true)
        .is_some());
    // The second's late outcome changes nothing, success or failure.
    assert_eq!(breaker.record_success(second), None);
    assert_eq!(breaker.record_failure(second, Instant::now(), true), None);
    assert_eq!(breaker.state(Instant::now()), BreakerState::Open);
    // In HalfOpen only the probe's outcome counts.
    advance(Duration::from_secs(1)).await;
    let (probe, _) = breaker.admit(Instant::now());
    assert_eq!(breaker.record_success(Admission::Admitted), None);
    assert_eq!(breaker.state(Instant::now()), BreakerState::HalfOpen);
    assert_eq!(breaker.record_success(probe), Some(Transition::Closed));
}

#[tokio::test(start_paused = true)]
async fn jitter_only_shortens_the_open_time() {
    for _ in 0..100 {
        let mut breaker = Breaker::new(BreakerConfig {
            jitter: 0.5,
            ..config(1)
        });
        let Some(Transition::Opened(d)) = fail(&mut breaker) else {
            panic!("should open");
        };
        assert!(
            d <= Duration::from_secs(1) && d >= Duration::from_millis(500),
            "{d:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_share_above_the_threshold_opens_once_there_are_enough_calls() {
    let mut breaker = Breaker::new(BreakerConfig {
        failure_rate: Some(FailureRate {
            threshold: 0.25,
            window: 20,
            min_calls: 10,
        }),
        ..config(5)
    });
    let mut call = |failed: bool, may_eject: bool| {
        let (admission, _) = breaker.admit(Instant::now());
        if failed {
            breaker.record_failure(admission, Instant::now(), may_eject)
        } else {
            breaker.record_success(admission)
        }
    };
    // One failure in three: never five in a row, but a third of the calls.
    for i in 0..8 {
        assert_eq!(call(i % 3 == 0, true), None, "call {i}: below the minimum");
    }
    assert_eq!(call(false, true), None);
    // The tenth call fails: 4 of 10 are failures, above 25 %, but the
    // service can't spare it: it stays in.
    assert_eq!(call(true, false), None);
    assert!(matches!(call(true, true), Some(Transition::Opened(_))));
}

#[tokio::test(start_paused = true)]
async fn without_a_failure_rate_only_consecutive_failures_open() {
    let mut breaker = Breaker::new(config(3));
    for i in 0..30 {
        let (admission, _) = breaker.admit(Instant::now());
        let transition = if i % 2 == 0 {
            breaker.record_failure(admission, Instant::now(), true)
        } else {
            breaker.record_success(admission)
        };
        assert_eq!(
            transition, None,
            "half of all calls fail, never two in a row"
        );
    }
}
