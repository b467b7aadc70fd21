//! The changes feed as one long answer: [`RegistryClient::changes_stream`]
//! opens it on the first registry that answers, and [`ChangesStream`]
//! reads it a line at a time. A watcher then pays one request per
//! connection, not one per change, and hears of a change as soon as the
//! registry writes it.

use super::{parse_answer, Read, RegistryClient, RegistryError, MAX_ANSWER_BYTES};
use crate::net::http::{error_chain, read_body};
use crate::wire::{ServiceChanges, ServiceName, StreamQuery, SubsetQuery, MIN_STREAM_WAIT};
use bytes::BytesMut;
use http::{header, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::{sync::Arc, time::Duration};
use tokio::time::timeout;

/// The media type of a stream of changes.
const NDJSON: &str = "application/x-ndjson";

/// An open stream of one service's changes: each [`next`](Self::next) is
/// what a blocking changes read from the previous one's index would
/// answer.
#[derive(Debug)]
pub struct ChangesStream {
    /// The answer still coming; `None` once it ended.
    body: Option<Incoming>,
    /// Bytes read but not yet a whole line.
    pending: BytesMut,
    /// A whole answer not yet handed out: a registry that does not stream
    /// answered a plain blocking read instead, and the stream is that one
    /// answer.
    whole: Option<ServiceChanges>,
    /// Longest quiet before the connection counts as dead: the registry
    /// sends a line at least every `wait`.
    quiet_limit: Duration,
}

impl RegistryClient {
    /// Opens the changes feed of `service` as one long answer, from
    /// `query.index` on (a snapshot first without it); with `subset`, the
    /// client's subset. A registry that answers with a single changes
    /// read (one that predates streams) gives a stream of that one answer.
    pub async fn changes_stream(
        &self,
        service: &ServiceName,
        query: StreamQuery,
        subset: Option<&SubsetQuery>,
    ) -> Result<ChangesStream, RegistryError> {
        let mut path = format!("/v1/services/{service}/changes?{}", query.to_query_string());
        if let Some(subset) = subset {
            path = format!("{path}&{}", subset.to_query_string());
        }
        let shared = &self.shared;
        let head_limit = shared.config.request_timeout;
        // A plain blocking read answers only after `wait`.
        let whole_limit = head_limit + query.wait;
        let opened = self
            .try_registries(&Method::GET, &path, None, |request| async move {
                let response = timeout(head_limit, shared.http.request(request))
                    .await
                    .map_err(|_| format!("no answer within {head_limit:?}"))?
                    .map_err(|e| error_chain(&e))?;
                let status = response.status();
                let streams = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .is_some_and(|t| t.as_bytes().starts_with(NDJSON.as_bytes()));
                if status.is_success() && streams {
                    return Ok(Read::Answer(Opened::Stream(response.into_body())));
                }
                let bytes = timeout(
                    whole_limit,
                    read_body(response.into_body(), MAX_ANSWER_BYTES),
                )
                .await
                .map_err(|_| format!("no answer within {whole_limit:?}"))?
                .map_err(|e| error_chain(&e))?;
                Ok(Read::checked(status, bytes, Opened::Whole))
            })
            .await?;
        let (body, whole) = match opened {
            Opened::Stream(body) => (Some(body), None),
            Opened::Whole(status, bytes) => (None, Some(parse_answer((status, bytes))?)),
        };
        Ok(ChangesStream {
            body,
            pending: BytesMut::new(),
            whole,
            quiet_limit: query.wait.max(MIN_STREAM_WAIT) + head_limit,
        })
    }
}

/// What a registry answered a stream's request with.
enum Opened {
    Stream(Incoming),
    Whole(StatusCode, bytes::Bytes),
}

impl ChangesStream {
    /// The next answer: the changes after the last one's index (none
    /// after a quiet `wait`). `Ok(None)` when the registry ended the
    /// stream (it is shutting down, or the subset's lease ended): open
    /// another from the last index. An error when the connection broke or
    /// went quiet for longer than the registry allows.
    pub async fn next(&mut self) -> Result<Option<ServiceChanges>, RegistryError> {
        if let Some(whole) = self.whole.take() {
            return Ok(Some(whole));
        }
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line = self.pending.split_to(end + 1);
                return serde_json::from_slice(&line[..end]).map(Some).map_err(|e| {
                    RegistryError::Unreadable {
                        status: StatusCode::OK,
                        cause: Arc::new(e),
                    }
                });
            }
            let Some(body) = self.body.as_mut() else {
                return Ok(None);
            };
            let frame = timeout(self.quiet_limit, body.frame()).await.map_err(|_| {
                RegistryError::Unreachable(format!(
                    "the stream of changes was quiet for {:?}",
                    self.quiet_limit
                ))
            })?;
            match frame {
                None => {
                    self.body = None;
                    // A line cut short by the end is not an answer.
                    self.pending.clear();
                }
                Some(Err(error)) => {
                    self.body = None;
                    return Err(RegistryError::Unreachable(error_chain(&error)));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if self.pending.len() + data.len() > MAX_ANSWER_BYTES {
                            self.body = None;
                            return Err(RegistryError::Unreachable(format!(
                                "a line of the stream of changes is over {MAX_ANSWER_BYTES} bytes"
                            )));
                        }
                        self.pending.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}
