//! The benchmark harness itself, on a tiny workload: it must measure what
//! happens, not just run. (Speed targets live in `make bench`, not here.)

use axum::{routing::get, Router};
use beacon_bench::{
    contenders::{ready, Contender, Wire},
    cross_zone::ZoneRun,
    deep_chain::ChainRun,
    detection::Detection,
    load::{closed_loop, open_loop, Route, Workload},
    plots::{plot_gray, plot_hang},
    report::Report,
    scenarios::{steady_runs, Comparison, Outcome, Plan, STEADY_TURN},
    stats::{back_after, buckets, Summary},
};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{net::TcpListener, time::Instant};

async fn backend(name: &'static str) -> String {
    serve(format!(
        r#"{{"thing":"camera","stars":4.5,"instance":"{name}"}}"#
    ))
    .await
}

async fn serve(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new().route("/ratings/camera", get(move || async move { body }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_records_what_happens_and_the_report_renders() {
    let (one, two) = (backend("a").await, backend("b").await);
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let workload = Workload {
        path: "/ratings/camera".into(),
        timeout: Duration::from_millis(500),
        duration: Duration::from_millis(300),
    };

    // Closed loop over two live backends: every request answered, by both.
    let samples = closed_loop(&Route::fixed(vec![one.clone(), two.clone()]), &workload, 4).await;
    let summary = Summary::of(&samples, workload.duration);
    assert!(summary.requests > 10, "{summary:?}");
    assert_eq!(summary.errors, 0);
    assert!(samples.iter().any(|s| s.instance.as_deref() == Some("a")));
    assert!(samples.iter().any(|s| s.instance.as_deref() == Some("b")));

    // Open loop at a fixed rate with one dead backend: about rate x duration
    // requests, a third of them refused, and the side task ran.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let route = Route::fixed(vec![one, two, dead]);
    let samples = open_loop(&route, &workload, 100, move |_start| async move {
        let _ = tx.send(());
    })
    .await;
    assert!(rx.await.is_ok(), "the fault task ran");
    assert!(
        (25..=35).contains(&samples.len()),
        "{} requests",
        samples.len()
    );
    let errors = samples.iter().filter(|s| !s.ok).count();
    assert!((8..=12).contains(&errors), "{errors} errors");
    let slices = buckets(&samples, Duration::from_millis(100), workload.duration);
    assert_eq!(slices.len(), 3);
    assert_eq!(slices.iter().map(|b| b.errors).sum::<usize>(), errors);
    assert!(back_after(&samples, "a", Duration::ZERO).is_some());

    // A 2xx with the wrong body is a failure, never a request done.
    let liar = serve(r#"{"thing":"football","stars":2.2,"instance":"x"}"#.into()).await;
    let lies = closed_loop(&Route::fixed(vec![liar]), &workload, 1).await;
    assert!(!lies.is_empty() && lies.iter().all(|s| !s.ok && s.wrong_answer));

    // The report renders medians over runs, says when failure handling did
    // not fire, and refuses a run with wrong answers.
    let steady = |contender, run, throughput: f64| {
        let mut summary = Summary::of(&[], workload.duration);
        summary.throughput = throughput;
        Outcome::steady(contender, run, summary)
    };
    let hang = |run, back: f64, fired: bool| Outcome {
        scenario: "hang",
        slow: Some(errors),
        back_after_ms: vec![Some(back)],
        detection: Some(Detection {
            fired,
            after_ms: fired.then_some(300.0),
            evidence: "r2 DOWN".into(),
        }),
        timeline: slices.clone(),
        ..Outcome::steady(
            Contender::Haproxy,
            run,
            Summary::with_failures(&samples, workload.duration),
        )
    };
    let repeated = |run, backs: Vec<Option<f64>>| Outcome {
        scenario: "repeated-hang",
        slow: Some(errors),
        back_after_ms: backs,
        timeline: slices.clone(),
        ..Outcome::steady(
            Contender::Beacon,
            run,
            Summary::with_failures(&samples, workload.duration),
        )
    };
    let gray = |run, share: f64| Outcome {
        scenario: "gray",
        faulty_share: Some(share),
        late_share: Some(0.0),
        healed_share: Some(0.33),
        timeline: slices.clone(),
        ..Outcome::steady(
            Contender::Beacon,
            run,
            Summary::with_failures(&samples, workload.duration),
        )
    };
    let mut outcomes = Vec::new();
    for (run, beacon) in [(0, 90.0), (1, 100.0), (2, 95.0)] {
        outcomes.push(steady(Contender::BareClient, run, 100.0));
        outcomes.push(steady(Contender::Beacon, run, beacon));
        outcomes.push(steady(Contender::BeaconNoDeadline, run, beacon + 3.0));
    }
    outcomes.extend([
        hang(0, 12.0, true),
        hang(1, 900.0, true),
        hang(2, 30.0, false),
        repeated(0, vec![Some(300.0), Some(400.0), Some(200.0)]),
        repeated(1, vec![Some(500.0), None, Some(250.0)]),
        gray(0, 0.01),
        gray(1, 0.02),
        gray(2, 0.0),
    ]);
    let mut report = Report {
        date: "today".into(),
        machine: "here".into(),
        command: "make bench-quick".into(),
        comparison: Comparison {
            outcomes: outcomes.clone(),
            slow_ms: 10.0,
            configs: vec![("haproxy".into(), "global\n".into())],
        },
        registry: None,
        store_costs: None,
        calls_across: vec![
            beacon_bench::deep_chain::markdown(
                &ChainRun {
                    requests: 400,
                    in_time: 180,
                    backend_answers: 400,
                },
                &ChainRun {
                    requests: 400,
                    in_time: 180,
                    backend_answers: 190,
                },
            ),
            beacon_bench::cross_zone::markdown(&[
                ZoneRun {
                    case: "no zone",
                    calls: 1000,
                    cross_zone: 500,
                    errors: 0,
                },
                ZoneRun {
                    case: "zone a",
                    calls: 1000,
                    cross_zone: 10,
                    errors: 0,
                },
            ]),
        ],
    };
    let markdown = report.markdown("plot.svg", "gray.svg");
    // 10 wasted of 400 against 220 of 400; 1 % cross-zone against 50 %.
    assert!(markdown.contains("on / off: **0.05**"), "{markdown}");
    assert!(
        markdown.contains("zone-blind (all healthy): **0.020**"),
        "{markdown}"
    );
    for expected in [
        "## Gray: one of three instances answers 40 ms late",
        "| 1.0 (0.0–2.0) % | 33.0 % |",
        "| beacon | 95 (90–100) | 0.95 (0.90–1.00) |",
        "| beacon, no deadline header | 98 (93–103) | 0.98 (0.93–1.03) |",
        "did not fire in 1 of 3 runs",
        "30 (12–900) ms (runs: 12, 900, 30)",
        "## Repeated-hang: one instance SIGSTOPped and resumed 3 times",
        "resume 1: 400 (300–500) ms (runs: 300, 500); resume 2: 400 ms (runs: 400, —); resume 3: 225 (200–250) ms",
        "median of 3 runs",
    ] {
        assert!(
            markdown.contains(expected),
            "no {expected:?} in\n{markdown}"
        );
    }
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    report.comparison.outcomes[1].summary.wrong_answers = 2;
    assert_eq!(report.failures().len(), 1);

    let dir = std::env::temp_dir().join(format!("beacon-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let plot = dir.join("plot.svg");
    plot_hang(&outcomes, (0.1, 0.2), &plot).expect("plot");
    let svg = std::fs::read_to_string(&plot).expect("svg written");
    assert!(
        svg.contains("<svg") && svg.contains("haproxy"),
        "an SVG with the legend"
    );
    let gray_plot = dir.join("gray.svg");
    plot_gray(&outcomes, (0.1, 0.2), &gray_plot).expect("gray plot");
    let svg = std::fs::read_to_string(&gray_plot).expect("svg written");
    assert!(
        svg.contains("<svg") && svg.contains("beacon"),
        "an SVG with the legend"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A backend that notes when each request came.
async fn noting(name: &'static str) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let body = format!(r#"{{"thing":"camera","stars":4.5,"instance":"{name}"}}"#);
    let noted = Arc::clone(&seen);
    let app = Router::new().route(
        "/ratings/camera",
        get(move || {
            noted.lock().expect("lock").push(Instant::now());
            let body = body.clone();
            async move { body }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_contenders_take_turns_and_are_timed_as_they_ran() {
    let ((first_url, first), (second_url, second)) = (noting("a").await, noting("b").await);
    let mut readies = Vec::new();
    for url in [first_url, second_url] {
        let ready = ready(Contender::BareClient, vec![url], "", &Wire::http1())
            .await
            .expect("ready");
        readies.push((Contender::BareClient, ready));
    }
    let plan = Plan {
        steady_for: STEADY_TURN * 2,
        concurrency: 2,
        ..Plan::quick()
    };
    let started = Instant::now();
    let outcomes = steady_runs(&readies, plan, 0).await;
    let took = started.elapsed();
    assert_eq!(outcomes.len(), 2);
    let span = |seen: &Mutex<Vec<Instant>>| {
        let seen = seen.lock().expect("lock");
        (
            *seen.first().expect("requests"),
            *seen.last().expect("requests"),
        )
    };
    let ((first_from, first_to), (second_from, _)) = (span(&first), span(&second));
    // In turns (the second's two back to back, as the rotation goes): each
    // served calls after the other had begun, not all in one piece.
    assert!(
        first_from < second_from && second_from < first_to,
        "not interleaved"
    );
    for (outcome, seen) in outcomes.iter().zip([&first, &second]) {
        let served = seen.lock().expect("lock").len();
        let measured = outcome.summary.requests;
        // One unmeasured turn each, then the measured ones.
        assert!(
            measured > 0 && served > measured,
            "{served} served, {measured} measured"
        );
        // Over the time the turns really took, which is longer than their
        // nominal length and shorter than the whole run.
        let rate = measured as f64;
        assert!(outcome.summary.throughput < rate / plan.steady_for.as_secs_f64());
        assert!(outcome.summary.throughput >= rate / took.as_secs_f64());
    }
    // The unmeasured turns come first, one per contender in order: the
    // first's all end before the second's begins, and its measured calls
    // begin after that.
    let first = first.lock().expect("lock");
    let warm = first.len() - outcomes[0].summary.requests;
    assert!(first[warm - 1] < second_from && second_from < first[warm]);
}
