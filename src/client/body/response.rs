//! Response bodies: whole, or streamed as they arrive within an optional
//! body timeout.

use super::BoxError;
use crate::net::http::{read_body, BodyError};
use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt};
use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::time::Sleep;

/// A response body: whole (what [`send`](crate::ServiceClient::send)
/// returns) or streamed from the instance as it arrives, optionally within
/// a body timeout that starts when the headers came.
#[derive(Debug)]
pub struct ResponseBody {
    kind: ResponseKind,
    /// When the body must be done by, and the timeout that set it (for the
    /// error).
    /// Boxed for size, like [`RequestKind::Once`]: only streamed bodies
    /// with a body timeout have one.
    deadline: Option<Box<(Pin<Box<Sleep>>, Duration)>>,
}

enum ResponseKind {
    Whole(Option<Bytes>),
    Incoming(hyper::body::Incoming),
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl std::fmt::Debug for ResponseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Whole(bytes) => f.debug_tuple("Whole").field(bytes).finish(),
            Self::Incoming(_) => f.write_str("Incoming"),
            Self::Boxed(_) => f.write_str("Boxed"),
        }
    }
}

/// A streamed response body that took longer than its body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the response body was not done within {0:?} of its headers")]
pub struct BodyTimeout(pub Duration);

impl ResponseBody {
    /// Any body (e.g. from a transport of your own).
    pub fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self::of(ResponseKind::Boxed(body.map_err(Into::into).boxed_unsync()))
    }

    fn of(kind: ResponseKind) -> Self {
        Self {
            kind,
            deadline: None,
        }
    }

    /// This body, failing with [`BodyTimeout`] unless done within
    /// `timeout` from now.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        let sleep = Box::pin(tokio::time::sleep(timeout));
        self.deadline = Some(Box::new((sleep, timeout)));
        self
    }

    /// The bytes of a body already read whole (what every attempt of a
    /// call made by [`send`](crate::ServiceClient::send) returns), taken as
    /// they are: no second read; `Err(self)` for a streamed one.
    pub(crate) fn into_whole(self) -> Result<Bytes, Self> {
        match self.kind {
            ResponseKind::Whole(bytes) => Ok(bytes.unwrap_or_default()),
            kind => Err(Self {
                kind,
                deadline: self.deadline,
            }),
        }
    }

    /// All of it, refusing more than `limit` bytes: at once for a whole
    /// body, as it arrives for a streamed one.
    pub async fn bytes(self, limit: usize) -> Result<Bytes, BoxError> {
        match (self.kind, self.deadline) {
            (ResponseKind::Whole(bytes), _) => {
                let bytes = bytes.unwrap_or_default();
                match bytes.len() > limit {
                    true => Err(BodyError::TooLarge(limit).into()),
                    false => Ok(bytes),
                }
            }
            // What every call that wants bytes does: read hyper's body as it is.
            (ResponseKind::Incoming(body), None) => collect(body, limit).await,
            (kind, deadline) => collect(Self { kind, deadline }, limit).await,
        }
    }
}

/// All of `body`, refusing more than `limit` bytes ([`BodyError::TooLarge`]);
/// a body that fails says why itself.
async fn collect<B>(body: B, limit: usize) -> Result<Bytes, BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    read_body(body, limit).await.map_err(|error| match error {
        BodyError::Read(cause) => cause,
        too_large => too_large.into(),
    })
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        Self::of(ResponseKind::Whole(Some(bytes).filter(|b| !b.is_empty())))
    }
}

impl From<hyper::body::Incoming> for ResponseBody {
    fn from(body: hyper::body::Incoming) -> Self {
        Self::of(ResponseKind::Incoming(body))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(deadline) = &mut self.deadline {
            let (sleep, timeout) = &mut **deadline;
            if sleep.as_mut().poll(cx).is_ready() {
                let timeout = *timeout;
                self.deadline = None;
                self.kind = ResponseKind::Whole(None);
                return Poll::Ready(Some(Err(BodyTimeout(timeout).into())));
            }
        }
        let frame = match &mut self.kind {
            ResponseKind::Whole(bytes) => bytes.take().map(|b| Ok(Frame::data(b))),
            ResponseKind::Incoming(body) => {
                ready!(Pin::new(body).poll_frame(cx)).map(|f| f.map_err(Into::into))
            }
            ResponseKind::Boxed(body) => ready!(Pin::new(body).poll_frame(cx)),
        };
        if frame.is_none() {
            self.deadline = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            ResponseKind::Whole(bytes) => bytes.is_none(),
            ResponseKind::Incoming(body) => body.is_end_stream(),
            ResponseKind::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            ResponseKind::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.remaining() as u64))
            }
            ResponseKind::Incoming(body) => body.size_hint(),
            ResponseKind::Boxed(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::body::chunks;
    use http_body_util::StreamBody;

    #[tokio::test]
    async fn bytes_refuses_a_body_over_its_limit() {
        let err = ResponseBody::new(chunks(&[4, 4]))
            .bytes(7)
            .await
            .expect_err("too long");
        assert!(err.is::<BodyError>(), "{err}");
        let whole = ResponseBody::from(Bytes::from_static(b"12345678"));
        assert!(whole.bytes(7).await.is_err());
        assert_eq!(
            ResponseBody::new(chunks(&[4, 4]))
                .bytes(8)
                .await
                .expect("fits")
                .len(),
            8
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_streamed_body_past_its_timeout_fails_with_a_clear_error() {
        let stalled = StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, BoxError>,
        >());
        let body = ResponseBody::new(stalled).with_timeout(Duration::from_secs(2));
        let err = body.collect().await.expect_err("stalled");
        assert!(err.is::<BodyTimeout>(), "{err}");
        assert!(err.to_string().contains("2s"), "{err}");
    }
}
