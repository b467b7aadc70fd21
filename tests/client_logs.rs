//! The walkthrough's log lines and the matching events. In a test binary of
//! its own: `tracing` caches per-callsite interest process-wide, so capturing
//! logs on one thread while other tests log on theirs is racy.

mod support;

use beacon::{BreakerState, EventKind};
use support::{
    backend::Mode,
    cluster::{breaker, fast_client, Cluster},
};

#[tokio::test]
async fn breaker_changes_are_logged_and_broadcast_as_the_walkthrough_reads() {
    let logs = support::capture_logs();
    let cluster = Cluster::start(2, breaker(1, 500), fast_client()).await;
    let mut events = cluster.resolver.subscribe();
    let hanging = cluster.backends[1].url.clone();
    cluster.backends[1].set(Mode::Hang);
    cluster.get_ok(2).await;
    cluster.until_breaker(1, BreakerState::Open).await;
    cluster.backends[1].set(Mode::Answer);
    cluster.until_breaker(1, BreakerState::HalfOpen).await;
    while cluster.breaker_of(1) != BreakerState::Closed {
        cluster.get_ok(1).await;
    }
    for backend in &cluster.backends {
        backend.set(Mode::Hang);
    }
    while cluster
        .client
        .get("/x")
        .await
        .map_or_else(|e| !e.is_unavailable(), |_| true)
    {}

    let text = logs.text();
    let first = &cluster.backends[0].url;
    for line in [
        format!("OPEN breaker on [ratings at {hanging}]"),
        format!("HALF-OPEN breaker on [ratings at {hanging}]"),
        format!("CLOSE breaker on [ratings at {hanging}]"),
        format!("ratings using instance ratings-1: {first}"),
        "all ratings instances are down".to_owned(),
    ] {
        assert!(text.contains(&line), "no {line:?} in the log:\n{text}");
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
