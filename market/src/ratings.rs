//! Ratings for the page: fetched live through Beacon under one deadline,
//! served from the last good value when that fails.

use crate::catalog::{Thing, THINGS};
use beacon::{deadline, net::clock::wall_clock_ms, ServedBy, ServiceClient};
use beacon_ratings_api::Rating;
use dashmap::DashMap;
use futures_util::future::join_all;
use serde::Serialize;
use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

/// Where a shown rating came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Fetched for this answer.
    Live,
    /// The last good value, because a live one couldn't be had in time.
    Cached,
    /// Never fetched yet, or the last good value is older than the
    /// board's maximum age.
    None,
}

/// A rating as the page and `/api/things` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShownRating {
    /// Stars out of five; `None` when never fetched.
    pub stars: Option<f64>,
    /// Where it came from.
    pub source: Source,
    /// The instance that answered (for a cached value: back then).
    pub instance: Option<String>,
    /// How old the value is: 0 when live.
    pub age_ms: Option<u64>,
}

/// Which instance served the latest live rating.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastServed {
    /// The thing asked about.
    pub thing: &'static str,
    /// The instance id.
    pub instance: String,
    /// Its address.
    pub address: String,
    /// Attempts it took (more than 1: a retry landed elsewhere).
    pub attempts: u32,
    /// Wall-clock milliseconds since the Unix epoch.
    pub at_ms: u64,
}

#[derive(Debug, Clone)]
struct Good {
    stars: f64,
    instance: String,
    at: Instant,
}

/// Fetches ratings and remembers the last good one of each thing.
#[derive(Debug)]
pub struct RatingsBoard {
    client: ServiceClient,
    deadline: Duration,
    /// Past this age a cached rating is not shown: stale data must not
    /// pass for a rating.
    max_age: Duration,
    last_good: DashMap<&'static str, Good>,
    last_served: Mutex<Option<LastServed>>,
}

impl RatingsBoard {
    /// A board that asks `client`, answers within `deadline`, and shows
    /// cached ratings up to `max_age` old.
    pub fn new(client: ServiceClient, deadline: Duration, max_age: Duration) -> Self {
        Self {
            client,
            deadline,
            max_age,
            last_good: DashMap::new(),
            last_served: Mutex::new(None),
        }
    }

    /// Every thing with its rating, fetched concurrently; returns within
    /// the deadline whatever the ratings instances do.
    pub async fn all(&self) -> Vec<(Thing, ShownRating)> {
        let deadline = Instant::now() + self.deadline;
        let fetches = THINGS
            .iter()
            .map(|thing| async move { (*thing, self.one(thing, deadline).await) });
        // The calls keep to the page's deadline (and to its caller's, if
        // that is sooner), and tell the ratings instances so.
        deadline::within(deadline, join_all(fetches)).await
    }

    /// Which instance served the latest live rating.
    pub fn last_served(&self) -> Option<LastServed> {
        self.last_served
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn one(&self, thing: &'static Thing, deadline: Instant) -> ShownRating {
        let started = Instant::now();
        let path = format!("/ratings/{}", thing.id);
        let why = match tokio::time::timeout_at(deadline, self.client.get(&path)).await {
            Ok(Ok(response)) if response.status().is_success() => {
                let served = response.extensions().get::<ServedBy>().cloned();
                match serde_json::from_slice::<Rating>(response.body()) {
                    Ok(rating) => return self.live(thing, rating, served, started),
                    Err(e) => format!("unreadable answer: {e}"),
                }
            }
            Ok(Ok(response)) => format!("answered {}", response.status()),
            Ok(Err(error)) => error.chain(),
            Err(_) => format!("no answer within the {:?} page deadline", self.deadline),
        };
        let shown = self.fallback(thing);
        let waited = started.elapsed().as_millis();
        match shown.source {
            Source::Cached => tracing::warn!(
                "rating for {}: cached ({} ms old) after {waited} ms: {why}",
                thing.id,
                shown.age_ms.unwrap_or_default()
            ),
            _ => tracing::warn!("rating for {}: none yet after {waited} ms: {why}", thing.id),
        }
        shown
    }

    fn live(
        &self,
        thing: &'static Thing,
        rating: Rating,
        served: Option<ServedBy>,
        started: Instant,
    ) -> ShownRating {
        let instance = rating.instance.to_string();
        self.last_good.insert(
            thing.id,
            Good {
                stars: rating.stars,
                instance: instance.clone(),
                at: Instant::now(),
            },
        );
        if let Some(served) = served {
            tracing::debug!(
                "rating for {}: live from {} in {} ms ({} attempts)",
                thing.id,
                served.id,
                started.elapsed().as_millis(),
                served.attempts
            );
            let mut last = self
                .last_served
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // The walkthrough's line, once per change of serving instance
            // rather than once per request.
            if last.as_ref().map(|l| l.instance.as_str()) != Some(served.id.as_str()) {
                tracing::info!(
                    "{} using instance {}: {}",
                    self.client.view().service(),
                    served.id,
                    served.address
                );
            }
            *last = Some(LastServed {
                thing: thing.id,
                instance: served.id.to_string(),
                address: served.address.to_string(),
                attempts: served.attempts,
                at_ms: wall_clock_ms(),
            });
        }
        ShownRating {
            stars: Some(rating.stars),
            source: Source::Live,
            instance: Some(instance),
            age_ms: Some(0),
        }
    }

    fn fallback(&self, thing: &Thing) -> ShownRating {
        match self.last_good.get(thing.id) {
            Some(good) if good.at.elapsed() <= self.max_age => ShownRating {
                stars: Some(good.stars),
                source: Source::Cached,
                instance: Some(good.instance.clone()),
                age_ms: Some(u64::try_from(good.at.elapsed().as_millis()).unwrap_or(u64::MAX)),
            },
            _ => ShownRating {
                stars: None,
                source: Source::None,
                instance: None,
                age_ms: None,
            },
        }
    }
}
