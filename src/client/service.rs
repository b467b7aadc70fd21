//! `ServiceClient` as a `tower::Service`, so it composes with tower
//! middleware — and with clients built on tower, such as tonic's.

use super::{with_time_left, BoxError, Call, ClientError, ResponseBody, ServiceClient, Transport};
use crate::deadline;
use bytes::Bytes;
use http::{Request, Response};
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

/// Streams both ways, like [`ServiceClient::stream`].
impl<T, B> tower::Service<Request<B>> for ServiceClient<T>
where
    T: Transport,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = ClientError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, ClientError>> + Send>>;

    /// Ready once the view has its first registry answer and some instance
    /// would admit a request; `Pending` otherwise, woken by the next change
    /// of an instance or breaker. Put tower's `load_shed` or `timeout` in
    /// front to fail fast instead of waiting.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        self.waiting.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let settings = &self.inner.settings;
        let (allowed, replay_limit) = (settings.deadline, settings.retries.replay_limit);
        // The stack was made ready for this call: take it, leave a fresh clone.
        let mut stack = self.waiting.clone();
        std::mem::swap(&mut stack, &mut self.waiting);
        Box::pin(async move {
            let call = Call::streaming(request, allowed, replay_limit)
                .await?
                .within(deadline::current());
            let call = with_time_left(call)?;
            let (deadline, allowed) = (call.deadline, call.allowed());
            // Every attempt and backoff keeps to the deadline; this bounds a
            // wait for readiness between attempts.
            tokio::time::timeout_at(deadline, tower::Service::call(&mut stack, call))
                .await
                .unwrap_or(Err(ClientError::DeadlineExceeded { deadline: allowed }))
        })
    }
}
