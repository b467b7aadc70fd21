//! The walkthrough's log lines and the matching events. In a test binary of
//! its own: `tracing` caches per-callsite interest process-wide, so capturing
//! logs on one thread while other tests log on theirs is racy.

mod support;

use beacon::{BreakerState, EventKind};
use support::{
    backend::Mode,
    cluster::{breaker, fast_client, Cluster, PATIENCE},
    eventually,
};

/// The levels `fmt` printed on the lines where `message` starts (after the
/// timestamp, level and target), in order.
fn levels_of<'a>(text: &'a str, message: &str) -> Vec<&'a str> {
    // A space before it, so "OPEN breaker" does not match "HALF-OPEN breaker".
    let needle = format!(" {message}");
    text.lines()
        .filter_map(|line| {
            let head = &line[..line.find(&needle)?];
            head.split_whitespace()
                .find(|word| matches!(*word, "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR"))
        })
        .collect()
}

#[tokio::test]
async fn breaker_changes_are_logged_and_broadcast_as_the_walkthrough_reads() {
    // Debug too: the per-request "using instance" line is logged at debug.
    let logs = support::capture_logs_at(tracing::Level::DEBUG);
    let cluster = Cluster::start(2, breaker(1, 500), fast_client()).await;
    let mut events = cluster.resolver.subscribe();
    let hanging = cluster.backends[1].url.clone();
    cluster.backends[1].set(Mode::Hang);
    cluster.get_ok(2).await;
    cluster.until_breaker(1, BreakerState::Open).await;
    cluster.backends[1].set(Mode::Answer);
    cluster.until_breaker(1, BreakerState::HalfOpen).await;
    cluster.get_ok_until_breaker(1, BreakerState::Closed).await;
    for backend in &cluster.backends {
        backend.set(Mode::Hang);
    }
    eventually(
        PATIENCE,
        "a call to fail as unavailable, every breaker open",
        || async {
            match cluster.client.get("/x").await {
                Err(e) if e.is_unavailable() => Some(()),
                _ => None,
            }
        },
    )
    .await;

    let text = logs.text();
    let first = &cluster.backends[0].url;
    for (line, level) in [
        (format!("OPEN breaker on [ratings at {hanging}]"), "WARN"),
        (
            format!("HALF-OPEN breaker on [ratings at {hanging}]"),
            "INFO",
        ),
        (format!("CLOSE breaker on [ratings at {hanging}]"), "INFO"),
        // Per request, so at debug: never an info line per call.
        (
            format!("ratings using instance ratings-1: {first}"),
            "DEBUG",
        ),
        ("all ratings instances are down".to_owned(), "WARN"),
    ] {
        let levels = levels_of(&text, &line);
        assert!(!levels.is_empty(), "no {line:?} in the log:\n{text}");
        assert!(
            levels.iter().all(|l| *l == level),
            "{line:?} logged at {levels:?}, not only at {level}:\n{text}"
        );
    }
    let kinds: Vec<&'static str> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| match &e.kind {
            EventKind::BreakerOpened { address, .. }
            | EventKind::BreakerHalfOpened { address, .. }
            | EventKind::BreakerClosed { address, .. } => address.as_str() == hanging,
            _ => false,
        })
        .map(|e| match e.kind {
            EventKind::BreakerOpened { .. } => "opened",
            EventKind::BreakerHalfOpened { .. } => "half_opened",
            _ => "closed",
        })
        .collect();
    assert_eq!(kinds[..3], ["opened", "half_opened", "closed"]);
}
