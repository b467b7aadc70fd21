//! The bodies a call sends and receives: whole buffers where they can be —
//! a request kept for a retry or a hedge, the answer `send` returns — and
//! streams where they must be, for payloads too large to hold or that
//! arrive over time.
//!
//! The request body of a call that may be sent again (an idempotent one) is
//! read up to the replay limit before the first attempt, within the call's
//! deadline: one that ends within the limit is sent again as it is, a
//! `Bytes` clone; a longer one streams through to one instance, once, and
//! its call is neither retried nor hedged — as linkerd and Envoy do, so
//! memory stays bounded by the limit per call. Any other call's body
//! streams at once: it could never be sent twice, and its sender may be
//! waiting for the answer before it ends its body (a gRPC stream).

mod request;
mod response;

pub(crate) use request::{read_up_to, Payload};
pub use request::{RequestBody, RequestBodyError};
pub use response::{BodyTimeout, ResponseBody};

/// The error type of streamed bodies: whatever the stream or the
/// connection under it said.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body of `sizes.len()` frames of those sizes, for the tests.
#[cfg(test)]
fn chunks(
    sizes: &[usize],
) -> impl http_body::Body<Data = bytes::Bytes, Error = std::convert::Infallible> + Send {
    let frames: Vec<Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>> = sizes
        .iter()
        .map(|&n| Ok(http_body::Frame::data(bytes::Bytes::from(vec![7u8; n]))))
        .collect();
    http_body_util::StreamBody::new(futures_util::stream::iter(frames))
}
