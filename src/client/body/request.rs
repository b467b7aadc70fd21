//! Request bodies: whole, or streamed once; and reading one as far as the
//! replay limit.

use super::BoxError;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt};
use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tokio::sync::Notify;

/// A request body as an attempt sends it.
#[derive(Debug)]
pub struct RequestBody(RequestKind);

enum RequestKind {
    /// The whole body, sent in one frame.
    Whole(Option<Bytes>),
    /// A body sent as it comes (boxed: rare, and every request the client
    /// sends is moved several times on its way out).
    Once(Box<Streamed>),
}

/// A streamed body: what was read of it already, the rest, and whom to
/// tell when it has all been sent.
struct Streamed {
    read: Option<Bytes>,
    rest: UnsyncBoxBody<Bytes, BoxError>,
    /// Told once the last frame is out: the attempt timeout counts from
    /// then, since until then the time is the sender's.
    sent: Arc<Notify>,
}

/// The caller's request body failed mid-stream: the call fails, and the
/// instance it went to is not blamed.
#[derive(Debug, thiserror::Error)]
#[error("the request body failed")]
pub struct RequestBodyError(#[source] pub BoxError);

impl std::fmt::Debug for RequestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Whole(bytes) => f.debug_tuple("Whole").field(bytes).finish(),
            Self::Once(once) => f.debug_struct("Once").field("read", &once.read).finish(),
        }
    }
}

impl From<Bytes> for RequestBody {
    fn from(bytes: Bytes) -> Self {
        Self(RequestKind::Whole(Some(bytes).filter(|b| !b.is_empty())))
    }
}

impl RequestBody {
    /// `read`, then `rest`, telling `sent` when all is out.
    pub(crate) fn streamed(
        read: Option<Bytes>,
        rest: UnsyncBoxBody<Bytes, BoxError>,
        sent: Arc<Notify>,
    ) -> Self {
        Self(RequestKind::Once(Box::new(Streamed { read, rest, sent })))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let once = match &mut self.0 {
            RequestKind::Whole(bytes) => {
                return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b))))
            }
            RequestKind::Once(once) => once,
        };
        let frame = match once.read.take() {
            Some(bytes) => Some(Ok(Frame::data(bytes))),
            None => match Pin::new(&mut once.rest).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(frame) => frame,
            },
        };
        let frame = frame.map(|f| f.map_err(|e| Box::new(RequestBodyError(e)) as BoxError));
        if frame.is_none() || (once.read.is_none() && once.rest.is_end_stream()) {
            once.sent.notify_one();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            RequestKind::Whole(bytes) => bytes.is_none(),
            RequestKind::Once(once) => once.read.is_none() && once.rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            RequestKind::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            RequestKind::Once(once) => {
                let read = once.read.as_ref().map_or(0, |b| b.len() as u64);
                let rest = once.rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + read);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + read);
                }
                hint
            }
        }
    }
}

/// A request body read as far as the replay limit.
#[derive(Debug)]
pub(crate) enum Payload {
    /// It ended within the limit: every attempt sends these bytes.
    Replayable(Bytes),
    /// It did not: what was read to find that out, and the rest.
    Over {
        read: Option<Bytes>,
        rest: UnsyncBoxBody<Bytes, BoxError>,
    },
}

/// Reads `body` until it ends or passes `limit` bytes. Trailers of a body
/// that ends within the limit are dropped (HTTP requests rarely carry
/// them; gRPC's do not).
pub(crate) async fn read_up_to<B>(body: B, limit: usize) -> Result<Payload, BoxError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut body = body.map_err(Into::into).boxed_unsync();
    if body.size_hint().lower() > limit as u64 {
        return Ok(Payload::Over {
            read: None,
            rest: body,
        });
    }
    // One frame is kept as it is; only a body in several is copied.
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            Some(previous) => {
                joined.extend_from_slice(&previous);
                joined.extend_from_slice(&data);
            }
            None => joined.extend_from_slice(&data),
        }
        let read = first.as_ref().map_or(joined.len(), Bytes::len);
        if read > limit {
            let read = first.take().unwrap_or_else(|| joined.split().freeze());
            return Ok(Payload::Over {
                read: Some(read),
                rest: body,
            });
        }
    }
    Ok(Payload::Replayable(
        first.unwrap_or_else(|| joined.freeze()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::body::chunks;
    use http_body_util::{Full, StreamBody};

    fn sent_once(payload: Payload, sent: &Arc<Notify>) -> RequestBody {
        match payload {
            Payload::Over { read, rest } => RequestBody::streamed(read, rest, Arc::clone(sent)),
            Payload::Replayable(_) => panic!("over the limit"),
        }
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_kept_whole_and_one_frame_is_not_copied() {
        let bytes = Bytes::from_static(b"hello");
        let Payload::Replayable(kept) =
            read_up_to(Full::new(bytes.clone()), 5).await.expect("read")
        else {
            panic!("within the limit");
        };
        assert_eq!(kept.as_ptr(), bytes.as_ptr(), "the same buffer");
        let Payload::Replayable(kept) = read_up_to(chunks(&[3, 4]), 7).await.expect("read") else {
            panic!("within the limit");
        };
        assert_eq!(kept.len(), 7);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_streams_once_with_nothing_lost_and_says_when_it_is_out() {
        let sent = Arc::new(Notify::new());
        let body = sent_once(
            read_up_to(chunks(&[3, 4, 5, 6]), 6).await.expect("read"),
            &sent,
        );
        let all = body.collect().await.expect("body").to_bytes();
        assert_eq!(all.len(), 18);
        // The permit is there: the attempt learns the body is out.
        tokio::time::timeout(std::time::Duration::from_secs(1), sent.notified())
            .await
            .expect("told");
        // Known to be too long from its size: not read at all before sending.
        let body = sent_once(
            read_up_to(Full::new(Bytes::from(vec![1; 10])), 6)
                .await
                .expect("read"),
            &sent,
        );
        assert_eq!(body.size_hint().exact(), Some(10));
        assert_eq!(body.collect().await.expect("body").to_bytes().len(), 10);
    }

    #[tokio::test]
    async fn a_failing_stream_is_the_callers_error() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"12345678"))),
            Err("disk gone".into()),
        ];
        let rest = StreamBody::new(futures_util::stream::iter(frames));
        let payload = read_up_to(rest, 4).await.expect("read as far as the limit");
        let body = sent_once(payload, &Arc::new(Notify::new()));
        let err = body.collect().await.expect_err("fails");
        assert!(err.is::<RequestBodyError>(), "{err}");
    }
}
