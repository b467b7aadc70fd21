//! The market's shared state: what every handler reads.

use crate::{
    cart::Carts,
    customers::Customers,
    panel::{event_log::EventLog, status::Status, traffic::TrafficShares},
    ratings::RatingsBoard,
    store::{signing::Signer, Store},
};
use beacon::deadline::DeadlineLayer;
use beacon::overload::OverloadLayer;
use beacon::{Resolver, ServiceClient};
use beacon_kit::metrics::RequestMetrics;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Ratings, live or remembered.
    pub board: RatingsBoard,
    /// The database: carts, customers, orders.
    pub store: Store,
    /// Shopping carts, in the store.
    pub carts: Carts,
    /// Customers, in the store.
    pub customers: Customers,
    /// Resolves `ratings` (and knows the registry URLs).
    pub resolver: Resolver,
    /// The library's events, for the live panel.
    pub events: Arc<EventLog>,
    /// The ratings client, for its snapshot.
    pub ratings: ServiceClient,
    /// Fires on shutdown, ending live-panel streams so the server can drain.
    pub shutdown: CancellationToken,
    /// How long a page may take: shown on the page.
    pub deadline_ms: u64,
    /// Support's bearer token: reads any customer record.
    pub admin_token: Option<String>,
    /// Keyed with the market's secret: finds a session's cart, customer
    /// and CSRF token from its cookie, the same on every replica.
    pub session_keys: Signer,
    /// Each instance's share of recent calls, for the panel.
    traffic: TrafficShares,
    /// The market's metrics, the library's included (`GET /_metrics`).
    pub(crate) metrics: Registry,
    /// Requests by route and status, recorded around every handler.
    pub(crate) requests: Arc<RequestMetrics>,
    /// Gives each request its caller's deadline (`beacon-deadline-ms`), so
    /// that its ratings calls keep within it; refuses spent ones.
    pub(crate) deadlines: DeadlineLayer,
    /// Sheds pages and API calls past [`MAX_IN_FLIGHT`] at once (503
    /// `overloaded`), and reports the market's load on every answer.
    pub(crate) overload: OverloadLayer,
}

/// Most page and API requests the market serves at once; the next is shed
/// at once with 503 `overloaded` and `Retry-After`, rather than queued
/// behind the others until every one of them misses its deadline.
pub const MAX_IN_FLIGHT: u32 = 1024;

/// Who gets in: what sessions are keyed with, and support's token.
#[derive(Debug, Clone)]
pub struct Guards {
    /// Keyed with the market's secret (see [`AppState::session_keys`]).
    pub session_keys: Signer,
    /// Support's bearer token, if there is one.
    pub admin_token: Option<String>,
}

/// Shared handle on [`AppState`].
pub type App = Arc<AppState>;

impl AppState {
    /// State over a ratings client and a store. Starts following the
    /// resolver's events, so call it inside a tokio runtime.
    pub fn new(
        store: Store,
        resolver: Resolver,
        ratings: ServiceClient,
        board: RatingsBoard,
        deadline_ms: u64,
        shutdown: CancellationToken,
        guards: Guards,
    ) -> Self {
        let mut metrics = Registry::with_prefix("beacon_market");
        let requests = Arc::new(RequestMetrics::register(&mut metrics));
        // The library's own: attempts, breakers, latency, hedges, retries.
        beacon::metrics::register(&mut metrics, &ratings);
        store.metrics.register(&mut metrics);
        let deadlines = DeadlineLayer::new();
        metrics.register(
            "deadline_refused",
            "Requests refused unserved: the caller's budget (beacon-deadline-ms) was spent when they arrived",
            deadlines.refused(),
        );
        let overload = OverloadLayer::new(MAX_IN_FLIGHT);
        overload.register_metrics(&mut metrics);
        let events = Arc::new(EventLog::new());
        tokio::spawn(Arc::clone(&events).follow(resolver.clone()));
        Self {
            board,
            carts: Carts::new(store.clone()),
            customers: Customers::new(store.clone()),
            store,
            events,
            resolver,
            ratings,
            shutdown,
            deadline_ms,
            admin_token: guards.admin_token,
            session_keys: guards.session_keys,
            traffic: TrafficShares::default(),
            metrics,
            requests,
            deadlines,
            overload,
        }
    }

    /// The live panel's data.
    pub fn status(&self) -> Status {
        let snapshot = self.ratings.snapshot();
        let shares = self.traffic.observe(&snapshot);
        Status::new(
            self.resolver.registry().urls(),
            snapshot,
            &shares,
            self.board.last_served(),
        )
    }
}
