//! One call as it moves through the client's parts: the request, kept so it
//! can be sent again, and what the call has learned so far.

use super::body::{read_up_to, BoxError, Payload, RequestBody};
use super::ClientError;
use crate::deadline::DEADLINE_HEADER;
use crate::wire::Address;
use bytes::Bytes;
use http::{request::Parts, uri::PathAndQuery, HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::BodyExt;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{sync::Notify, time::Instant};

/// Marks a request as safe to send twice though its method says otherwise
/// (a `POST` that only reads, such as a gRPC call of a method declared
/// `idempotency_level = IDEMPOTENT`): put it in the request's extensions and
/// the call may be retried and hedged like a `GET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idempotent;

/// A request that can be replayed on another instance, with the call's
/// state: its deadline, its attempts, the instances it tried.
///
/// `http::Request` can't be cloned (its extensions may hold anything), so a
/// call keeps the parts a retry needs, shared: a replay (and each move of
/// the call between parts) copies a pointer, not the headers.
#[derive(Debug, Clone)]
pub struct Call {
    request: Arc<Replayable>,
    /// When the whole call gives up.
    pub(crate) deadline: Instant,
    /// When the call began (kept rather than worked out: the balancer,
    /// the budgets and a first attempt all read it).
    started: Instant,
    /// This attempt's number, from 1.
    pub(crate) attempt: u32,
    /// Instances already tried; a retry goes elsewhere. Allocates only once
    /// a retry is needed.
    pub(crate) tried: Vec<Address>,
    /// Why the latest attempt failed: the answer when a later attempt can't
    /// be made or is cut short.
    pub(crate) last_error: Option<ClientError>,
}

/// What of a request is sent again on a retry. (Not its HTTP version: the
/// connection decides that — HTTP/2 where the instance speaks it.)
#[derive(Debug)]
struct Replayable {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Kept,
    shape: Shape,
}

/// What kind of call a request makes, worked out once.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// The method is idempotent, or the caller said the request is.
    idempotent: bool,
    /// The answer's body goes to the caller as it arrives, not read whole.
    streams_response: bool,
    /// A gRPC call (`content-type: application/grpc…`): its answer may say
    /// UNAVAILABLE in a header while its HTTP status says 200.
    grpc: bool,
}

/// The request body as the call keeps it.
#[derive(Debug)]
enum Kept {
    /// Whole, `Bytes`: every attempt sends it, never copied.
    Whole(Bytes),
    /// Streamed: the first attempt takes it, and there is no other.
    Once {
        body: Mutex<Option<RequestBody>>,
        /// The replay limit it was found to be over; `None`: not read, since
        /// the call could never be sent twice.
        limit: Option<usize>,
        /// Told when the body is all sent.
        sent: Arc<Notify>,
    },
}

impl Call {
    /// A first attempt at `request`, given `allowed` from now; the answer
    /// will be read whole.
    pub fn new(request: Request<Bytes>, allowed: Duration) -> Self {
        let (parts, body) = request.into_parts();
        let idempotent = idempotent(&parts);
        let shape = Shape {
            idempotent,
            streams_response: false,
            grpc: false,
        };
        Self::of(parts, Kept::Whole(body), shape, (Instant::now(), allowed))
    }

    /// A first attempt at a request with a streamed body, given `allowed`
    /// from now; the answer streams too. An idempotent call's body is read
    /// up to `replay_limit` bytes first, within the deadline: within it,
    /// the call may be retried and hedged; past it, the body streams to one
    /// instance only. Any other call's body streams at once.
    pub async fn streaming<B>(
        request: Request<B>,
        allowed: Duration,
        replay_limit: usize,
    ) -> Result<Self, ClientError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let idempotent = idempotent(&parts);
        let started = Instant::now();
        let deadline = started + allowed;
        let once = |read, rest, limit| {
            let sent = Arc::new(Notify::new());
            let body = RequestBody::streamed(read, rest, Arc::clone(&sent));
            Kept::Once {
                body: Mutex::new(Some(body)),
                limit,
                sent,
            }
        };
        let kept = if idempotent {
            match tokio::time::timeout_at(deadline, read_up_to(body, replay_limit)).await {
                Ok(Ok(Payload::Replayable(bytes))) => Kept::Whole(bytes),
                Ok(Ok(Payload::Over { read, rest })) => once(read, rest, Some(replay_limit)),
                Ok(Err(e)) => {
                    return Err(ClientError::RequestBody {
                        cause: Arc::from(e),
                    })
                }
                Err(_) => return Err(ClientError::DeadlineExceeded { deadline: allowed }),
            }
        } else {
            once(None, body.map_err(Into::into).boxed_unsync(), None)
        };
        let grpc = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let shape = Shape {
            idempotent,
            streams_response: true,
            grpc,
        };
        Ok(Self::of(parts, kept, shape, (started, allowed)))
    }

    fn of(parts: Parts, body: Kept, shape: Shape, (started, allowed): (Instant, Duration)) -> Self {
        Self {
            request: Arc::new(Replayable {
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
                body,
                shape,
            }),
            deadline: started + allowed,
            started,
            attempt: 1,
            tried: Vec::new(),
            last_error: None,
        }
    }

    /// When the call began.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// When the whole call gives up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The instances already tried.
    pub fn tried(&self) -> &[Address] {
        &self.tried
    }

    /// The same call, to be done by `deadline` if that comes first (e.g.
    /// the deadline of the request being served: see
    /// [`current`](crate::deadline::current)).
    pub(crate) fn within(mut self, deadline: Option<Instant>) -> Self {
        if let Some(deadline) = deadline {
            self.deadline = self.deadline.min(deadline);
        }
        self
    }

    /// The time to decide by when its next attempt is sent: when the call
    /// began, for its first (microseconds ago: the call's own set-up, one
    /// clock reading fewer per call); now, for a later one.
    pub(crate) fn attempt_time(&self) -> Instant {
        match self.attempt {
            1 => self.started(),
            _ => Instant::now(),
        }
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.request.method
    }

    /// The request to send to the instance at `base` (its address as a
    /// URI, parsed once per instance: see [`Endpoint::uri`]), absolute,
    /// telling the instance its budget if given (`deadline_header`, the
    /// value of [`DEADLINE_HEADER`]: see [`header_value`](crate::deadline::header_value)). A body
    /// over the replay limit goes with the first request made; a later one
    /// fails.
    ///
    /// [`Endpoint::uri`]: crate::endpoint::Endpoint::uri
    pub(crate) fn to_request(
        &self,
        base: &Uri,
        deadline_header: Option<HeaderValue>,
    ) -> Result<Request<RequestBody>, ClientError> {
        let replay = &*self.request;
        let uri = absolute(base, &replay.uri)?;
        let body = match &replay.body {
            Kept::Whole(bytes) => RequestBody::from(bytes.clone()),
            Kept::Once { body, .. } => body
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .ok_or_else(|| {
                    ClientError::InvalidRequest(
                        "the request body streamed to an instance already".into(),
                    )
                })?,
        };
        // Field by field rather than through `Request::builder`, whose every
        // step moves the whole head: this runs once per attempt.
        let mut request = Request::new(body);
        *request.method_mut() = replay.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = replay.headers.clone();
        if let Some(value) = deadline_header {
            request.headers_mut().insert(DEADLINE_HEADER, value);
        }
        Ok(request)
    }

    /// Whether it may be sent twice without harm: its method is idempotent
    /// (RFC 9110 §9.2.2) or it was marked [`Idempotent`].
    pub fn is_idempotent(&self) -> bool {
        self.request.shape.idempotent
    }

    /// Whether another attempt could send it: idempotent, with a body kept
    /// whole.
    pub fn can_replay(&self) -> bool {
        self.is_idempotent() && matches!(self.request.body, Kept::Whole(_))
    }

    /// The replay limit its body was found to be over, if it was.
    pub(crate) fn replay_limit_passed(&self) -> Option<usize> {
        match &self.request.body {
            Kept::Whole(_) => None,
            Kept::Once { limit, .. } => *limit,
        }
    }

    /// For a body that streams: told once it is all sent (the attempt
    /// timeout counts from then; the time before is the sender's).
    pub(crate) fn body_sent(&self) -> Option<&Arc<Notify>> {
        match &self.request.body {
            Kept::Whole(_) => None,
            Kept::Once { sent, .. } => Some(sent),
        }
    }

    /// Whether the answer's body streams to the caller (else it is read
    /// whole within the attempt timeout).
    pub(crate) fn streams_response(&self) -> bool {
        self.request.shape.streams_response
    }

    /// Whether it is a gRPC call.
    pub(crate) fn is_grpc(&self) -> bool {
        self.request.shape.grpc
    }
}

/// Whether a request may be sent twice: by its method, or as its sender says.
fn idempotent(parts: &Parts) -> bool {
    is_idempotent(&parts.method) || parts.extensions.get::<Idempotent>().is_some()
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// `request`'s path and query at `base` (scheme, authority and any path
/// prefix of an instance's address). Without a prefix, the parts are reused
/// as they are (shared bytes, no formatting, no parsing): this runs once
/// per attempt.
fn absolute(base: &Uri, request: &Uri) -> Result<Uri, ClientError> {
    let invalid = |e: &dyn std::fmt::Display| ClientError::InvalidRequest(e.to_string());
    let path_and_query = request
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let path_and_query = match base.path().trim_end_matches('/') {
        "" => path_and_query,
        prefix => {
            PathAndQuery::try_from(format!("{prefix}{path_and_query}")).map_err(|e| invalid(&e))?
        }
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = base.scheme().cloned();
    parts.authority = base.authority().cloned();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).map_err(|e| invalid(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_to_the_address_with_its_path_prefix_if_any() {
        let get = |uri: &str| {
            Call::new(
                Request::get(uri).body(Bytes::new()).expect("request"),
                Duration::from_secs(1),
            )
        };
        for (base, asked, sent) in [
            (
                "http://127.0.0.1:8001",
                "/ratings/camera?x=1",
                "http://127.0.0.1:8001/ratings/camera?x=1",
            ),
            ("https://r.example:8443/", "/a", "https://r.example:8443/a"),
            (
                "http://127.0.0.1:8001/base",
                "/a?b",
                "http://127.0.0.1:8001/base/a?b",
            ),
            (
                "http://127.0.0.1:8001/base/",
                "/",
                "http://127.0.0.1:8001/base/",
            ),
            (
                "http://127.0.0.1:8001",
                "http://elsewhere:9/p",
                "http://127.0.0.1:8001/p",
            ),
        ] {
            let base: Uri = base.parse().expect("base");
            let request = get(asked).to_request(&base, None).expect("request");
            assert_eq!(request.uri().to_string(), sent, "{asked} at {base}");
        }
    }
}
