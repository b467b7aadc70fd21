//! The changes feed as one long answer (`stream=true`): newline-delimited
//! JSON, a line per changes read, each line what a blocking read with the
//! previous line's index would answer. A watcher pays for one request, not
//! one per change, and every watcher at the same index is sent the same
//! bytes, made once ([`Catalog::changes_json`]).
//!
//! NDJSON rather than server-sent events: each line is exactly the
//! non-streaming answer, so one parser reads both, and there is no event
//! framing to strip. A quiet service still gets a line (`"changes": []`)
//! every `wait`, so a watcher can tell a dead connection from a quiet one.
//! The answer ends on the registry's shutdown, or when a subset's client
//! lease has ended (a new request then gets the 404).
//!
//! [`Catalog::changes_json`]: crate::store::Catalog::changes_json

use super::AppState;
use crate::store::{Store, Subscription};
use axum::{
    body::Body,
    http::header::CONTENT_TYPE,
    response::{IntoResponse, Response},
};
use beacon_wire::{ServiceName, SubsetQuery, WatchQuery, INDEX_HEADER};
use bytes::{BufMut, Bytes, BytesMut};
use std::{convert::Infallible, time::Duration};

/// The media type of the streaming answer.
pub const NDJSON: &str = "application/x-ndjson";

/// Where a stream of changes stands: what it follows and the index its
/// watcher has.
struct Follow<S: Store> {
    app: AppState<S>,
    service: ServiceName,
    /// What the lines are read from; `None` once the stream is dropped.
    source: Option<Source>,
    /// The index the watcher has after the last line; `None` before the
    /// first (a snapshot, at once).
    index: Option<u64>,
    /// Longest quiet between two lines.
    wait: Duration,
}

/// The streaming answer for `service`: from `start` (a snapshot when
/// `None`), with lines at least every `wait`.
pub fn answer<S: Store>(
    app: AppState<S>,
    service: ServiceName,
    start: Option<u64>,
    wait: Duration,
    subset: Option<SubsetQuery>,
) -> Response {
    let source = match subset {
        None => Source::Changes(app.store.catalog().subscribe(&service)),
        Some(subset) => Source::Subset(subset),
    };
    let follow = Follow {
        app,
        service,
        source: Some(source),
        index: start,
        wait,
    };
    let lines = futures_util::stream::unfold(follow, next_line);
    let headers = [(CONTENT_TYPE, NDJSON)];
    // The index is in every line; the header carries the starting one.
    let start = start.unwrap_or(0).to_string();
    (headers, [(INDEX_HEADER, start)], Body::from_stream(lines)).into_response()
}

/// Where a stream's lines come from.
enum Source {
    /// The service's changes: its index subscribed to for as long as the
    /// stream lasts.
    Changes(Subscription),
    /// A client's subset, whole each time (read as a blocking subset read
    /// is, subscribing on each).
    Subset(SubsetQuery),
}

impl<S: Store> Drop for Follow<S> {
    fn drop(&mut self) {
        if let Some(Source::Changes(subscription)) = self.source.take() {
            self.app.store.catalog().unsubscribe(subscription);
        }
    }
}

/// The next line of `follow`'s stream, once there is one; `None` ends it.
async fn next_line<S: Store>(
    mut follow: Follow<S>,
) -> Option<(Result<Bytes, Infallible>, Follow<S>)> {
    let shutdown = &follow.app.shutdown;
    if shutdown.is_cancelled() {
        return None;
    }
    let catalog = follow.app.store.catalog();
    let (index, json) = match follow.source.as_mut()? {
        Source::Subset(subset) => {
            let query = follow.index.map(|index| WatchQuery {
                index,
                wait: follow.wait,
            });
            let answer = catalog
                .read_subset(&follow.service, query, subset, shutdown)
                .await
                .ok()?;
            // Plain data always serializes.
            let json = serde_json::to_vec(&answer).ok()?;
            (answer.index, Bytes::from(json))
        }
        Source::Changes(subscription) => {
            catalog
                .next_changes_json(subscription, follow.index, follow.wait, shutdown)
                .await
        }
    };
    if shutdown.is_cancelled() {
        // Woken by the shutdown, not by news: whatever came meanwhile, the
        // watcher reads from its index at the registry it turns to next.
        return None;
    }
    follow.index = Some(index);
    let mut line = BytesMut::with_capacity(json.len() + 1);
    line.put_slice(&json);
    line.put_u8(b'\n');
    Some((Ok(line.freeze()), follow))
}
