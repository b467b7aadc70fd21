//! Failing at once instead of waiting for readiness, as tower's
//! `load_shed` does — but with the reason the inner service gives.
//!
//! A [`Balance`](super::Balance) waits, truthfully, while no instance
//! admits a request. A call through
//! [`ServiceClient::send`](super::ServiceClient::send) should not: with
//! every instance down or at its cap it fails at once with what is wrong
//! (`AllUnavailable`, `AllAtCapacity`, `NoInstances`), and so does a retry
//! that finds no other instance. One stack serves both: this wrapper turns
//! "not ready" into that error.

use super::hedge::Placed;
use crate::wire::Address;
use futures_util::future::{self, Either, Ready};
use std::task::{Context, Poll};

/// A service that can say why it would not take `Req` now.
pub trait Unavailable<Req>: tower::Service<Req> {
    /// The error for `request` while the service is not ready.
    fn unavailable(&self, request: &Req) -> Self::Error;
}

/// Always ready: a request that comes while the inner service is not
/// fails at once with the inner service's reason.
#[derive(Debug, Clone)]
pub struct FailFast<S> {
    inner: S,
    /// Whether the last `poll_ready` found the inner service ready.
    inner_ready: bool,
}

impl<S> FailFast<S> {
    /// `inner`, failing fast.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            inner_ready: false,
        }
    }

    /// The service inside.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, Req> tower::Service<Req> for FailFast<S>
where
    S: Unavailable<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner_ready = match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => false,
        };
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        if std::mem::take(&mut self.inner_ready) {
            Either::Left(self.inner.call(request))
        } else {
            Either::Right(future::ready(Err(self.inner.unavailable(&request))))
        }
    }
}

/// Where a request that failed fast went: nowhere.
impl<F: Placed, T> Placed for Either<F, Ready<T>> {
    fn placed_at(&self) -> Option<&Address> {
        match self {
            Either::Left(placed) => placed.placed_at(),
            Either::Right(_) => None,
        }
    }
}
