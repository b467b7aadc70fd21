//! `GET /api/events`: the live panel's Server-Sent Events.
//!
//! Two event types: `beacon` carries each library event (breaker opened /
//! half-opened / closed, instance added / removed, registry lost /
//! regained) — first the recent ones, then each as it happens; `status`
//! carries the whole panel (see
//! [`Status`](super::status::Status)) on connect, after every library event,
//! and every second, so counters stay current. Streams end when the server
//! shuts down, so they never hold up a graceful exit.

use crate::app::App;
use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::stream::{self, Stream};
use std::{collections::VecDeque, convert::Infallible, time::Duration};
use tokio::{sync::broadcast, time::MissedTickBehavior};

/// How often the panel's counters refresh without any event.
const STATUS_EVERY: Duration = Duration::from_secs(1);

struct Feed {
    app: App,
    /// Events from before the page connected, still to send.
    history: VecDeque<beacon::Event>,
    events: broadcast::Receiver<beacon::Event>,
    tick: tokio::time::Interval,
    /// A library event was just sent: follow it with a status.
    status_due: bool,
}

/// The event stream.
pub async fn events(State(app): State<App>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut tick = tokio::time::interval(STATUS_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (history, events) = app.events.subscribe();
    let feed = Feed {
        history: history.into(),
        events,
        app,
        tick,
        status_due: true,
    };
    let stream = stream::unfold(feed, |mut feed| async move {
        let event = next_event(&mut feed).await?;
        Some((Ok(event), feed))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn next_event(feed: &mut Feed) -> Option<Event> {
    if let Some(event) = feed.history.pop_front() {
        return Some(json_event("beacon", &event));
    }
    if feed.status_due {
        feed.status_due = false;
        return Some(status_event(&feed.app));
    }
    tokio::select! {
        _ = feed.app.shutdown.cancelled() => None,
        received = feed.events.recv() => match received {
            Ok(event) => {
                feed.status_due = true;
                Some(json_event("beacon", &event))
            }
            // Fell behind: the status that follows brings the panel up to date.
            Err(broadcast::error::RecvError::Lagged(_)) => Some(status_event(&feed.app)),
            Err(broadcast::error::RecvError::Closed) => None,
        },
        _ = feed.tick.tick() => Some(status_event(&feed.app)),
    }
}

fn status_event(app: &App) -> Event {
    json_event("status", &app.status())
}

fn json_event(name: &str, data: &impl serde::Serialize) -> Event {
    let event = Event::default().event(name);
    // Serializing these plain structs cannot fail; an empty event is harmless.
    event
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name))
}
