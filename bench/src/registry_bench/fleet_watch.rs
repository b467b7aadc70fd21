//! One watcher of the fleet, each way it can follow a service: the changes
//! feed as one long answer, the feed long-polled, or the whole list
//! long-polled. Each keeps what it saw for the checks and the figures.

use beacon::net::http::{read_body, HttpClient};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};
use tokio::{sync::watch, time::Instant};

/// How a watcher of the registry follows the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Follow {
    /// `GET /v1/services/{service}/changes?stream=true`, over HTTP/1.1: a
    /// connection per watcher, as separate processes have.
    Stream,
    /// The same over HTTP/2, the watchers sharing
    /// [`SHARED_CONNECTIONS`](super::fleet::SHARED_CONNECTIONS)
    /// connections, as etcd's watch streams share theirs here.
    StreamShared,
    /// `GET /v1/services/{service}/changes?index=N&wait=D` in a loop, over
    /// HTTP/1.1.
    Changes,
    /// `GET /v1/services/{service}?index=N&wait=D`: the whole list.
    Lists,
}

/// What one watcher saw: when each answer came, at what index, how many
/// body bytes, and (on the feed) the ids each change put.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// The latest index, for the one who runs the watchers.
    latest: Arc<AtomicU64>,
    pub(super) answers: Vec<(Instant, u64)>,
    pub(super) bytes_after_sync: usize,
    pub(super) puts: Vec<String>,
    pub(super) instances_at_end: usize,
    pub(super) error: Option<String>,
}

impl Seen {
    /// Takes in a changes answer (`body`, come `at`): its puts and index
    /// once synced, its bytes after the first.
    fn changes(&mut self, at: Instant, body: &[u8]) -> Result<u64, String> {
        // Only what the checks need, as etcd's watchers take only each
        // event's key: the whole instance is the library's to parse.
        let changes: Changed = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if !self.answers.is_empty() {
            self.bytes_after_sync += body.len();
            self.puts.extend(changes.changes.into_iter().map(|c| c.id));
        }
        self.record(at, changes.index);
        Ok(changes.index)
    }

    fn record(&mut self, at: Instant, index: u64) {
        self.answers.push((at, index));
        self.latest.store(index, Ordering::Relaxed);
    }
}

/// A changes answer as a watcher here reads it: its index and the ids
/// that changed.
#[derive(Debug, serde::Deserialize)]
struct Changed {
    index: u64,
    changes: Vec<ChangedId>,
}

#[derive(Debug, serde::Deserialize)]
struct ChangedId {
    id: String,
}

/// One watcher of `url` (the service's changes or list route): syncs,
/// then follows until `stop`, keeping what it saw.
pub(super) async fn follow_service(
    http: HttpClient,
    url: String,
    follow: Follow,
    latest: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) -> Seen {
    let seen = Seen {
        latest,
        ..Seen::default()
    };
    match follow {
        Follow::Stream | Follow::StreamShared => follow_stream(http, url, seen, stop).await,
        Follow::Changes | Follow::Lists => long_poll(http, url, follow, seen, stop).await,
    }
}

/// Reads the feed's one long answer, a line at a time.
async fn follow_stream(
    http: HttpClient,
    url: String,
    mut seen: Seen,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let opened = async {
        let request = http::Request::get(format!("{url}?stream=true&wait=60s"))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        http.request(request).await.map_err(|e| e.to_string())
    };
    let response = tokio::select! {
        response = opened => response,
        _ = stop.changed() => return seen,
    };
    let mut body = match response {
        Ok(response) => response.into_body(),
        Err(error) => {
            seen.error = Some(error);
            return seen;
        }
    };
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = stop.changed() => break,
        };
        let at = Instant::now();
        match frame {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    pending.extend_from_slice(&data);
                }
            }
            Some(Err(error)) => {
                seen.error = Some(error.to_string());
                break;
            }
            None => {
                seen.error = Some("the stream ended".into());
                break;
            }
        }
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if let Err(error) = seen.changes(at, &line) {
                seen.error = Some(error);
                return seen;
            }
        }
    }
    seen
}

/// Long-polls the feed or the list, a request per answer.
async fn long_poll(
    http: HttpClient,
    url: String,
    follow: Follow,
    mut seen: Seen,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut index: Option<u64> = None;
    loop {
        let target = match index {
            None => url.clone(),
            Some(index) => format!("{url}?index={index}&wait=60s"),
        };
        let answer = tokio::select! {
            answer = get(&http, &target) => answer,
            _ = stop.changed() => break,
        };
        let (at, body) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                seen.error = Some(error);
                break;
            }
        };
        let new_index = if follow == Follow::Lists {
            // Only the index, from the body's head: parsing 10,000
            // instances per answer would measure this process.
            let Some(new_index) = list_index(&body) else {
                seen.error = Some("a list answer without an index".into());
                break;
            };
            if index.is_some() {
                seen.bytes_after_sync += body.len();
            }
            seen.instances_at_end = count_instances(&body);
            seen.record(at, new_index);
            new_index
        } else {
            match seen.changes(at, &body) {
                Ok(new_index) => new_index,
                Err(error) => {
                    seen.error = Some(error);
                    break;
                }
            }
        };
        index = Some(new_index);
    }
    seen
}

/// A GET's body, and when it was all in.
pub(super) async fn get(http: &HttpClient, url: &str) -> Result<(Instant, Bytes), String> {
    let request = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = http.request(request).await.map_err(|e| e.to_string())?;
    let body = read_body(response.into_body(), 1 << 26)
        .await
        .map_err(|e| e.to_string())?;
    Ok((Instant::now(), body))
}

/// `"index":N` from the start of a list answer.
fn list_index(body: &[u8]) -> Option<u64> {
    let head = std::str::from_utf8(&body[..body.len().min(200)]).ok()?;
    let rest = head.split("\"index\":").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// How many instances a list answer holds.
fn count_instances(body: &[u8]) -> usize {
    body.windows(5).filter(|w| w == b"\"id\":").count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_answer_gives_its_index_and_instance_count() {
        let body = br#"{"service":"f","index":1234,"instances":[{"service":"f","id":"a"},{"service":"f","id":"b"}]}"#;
        assert_eq!(list_index(body), Some(1234));
        assert_eq!(count_instances(body), 2);
    }

    #[test]
    fn a_changes_answer_counts_only_after_the_first() {
        let mut seen = Seen::default();
        let at = Instant::now();
        let first = br#"{"service":"f","index":5,"snapshot":true,"instances":[],"changes":[]}"#;
        assert_eq!(seen.changes(at, first), Ok(5));
        let put = br#"{"service":"f","index":6,"snapshot":false,"changes":[{"op":"put","id":"a","instance":{"service":"f","id":"a","address":"http://127.0.0.1:1","metadata":{},"registered_at":0,"ttl_ms":1000,"expires_in_ms":1000}}]}"#;
        assert_eq!(seen.changes(at, put), Ok(6));
        assert_eq!(seen.puts, ["a"]);
        assert_eq!(seen.bytes_after_sync, put.len());
        assert!(seen.changes(at, b"{").is_err());
    }
}
