//! The benchmark harness itself, on a tiny workload: it must measure what
//! happens, not just run. (Speed targets live in `make bench`, not here.)

use axum::{routing::get, Router};
use beacon_bench::{
    load::{closed_loop, open_loop, Route, Workload},
    report::{plot_hang, Report},
    scenarios::{Contender, Outcome},
    stats::{back_after, buckets, Summary},
};
use std::time::Duration;
use tokio::net::TcpListener;

async fn backend(name: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let body = format!(r#"{{"thing":"camera","stars":4.5,"instance":"{name}"}}"#);
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

    // The report renders, with the plot beside it.
    let outcome = Outcome {
        contender: Contender::Beacon,
        scenario: "hang",
        summary: Summary::of(&samples, workload.duration),
        slow: Some(errors),
        back_after_ms: Some(12.0),
        timeline: slices,
    };
    let report = Report {
        date: "today".into(),
        machine: "here".into(),
        command: "make bench-quick".into(),
        outcomes: vec![outcome.clone()],
        registry: None,
        proxy_configs: vec![("haproxy".into(), "global\n".into())],
        store_costs: None,
    };
    let markdown = report.markdown("plot.svg");
    let row = format!("| beacon | {} | {errors} | {errors} |", samples.len());
    assert!(markdown.contains(&row), "no {row:?} in\n{markdown}");
    assert!(markdown.contains("12 ms"), "{markdown}");
    let dir = std::env::temp_dir().join(format!("beacon-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let plot = dir.join("plot.svg");
    plot_hang(&[outcome], (0.1, 0.2), &plot).expect("plot");
    let svg = std::fs::read_to_string(&plot).expect("svg written");
    assert!(
        svg.contains("<svg") && svg.contains("beacon"),
        "an SVG with the legend"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
