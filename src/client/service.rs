//! `ServiceClient` as a `tower::Service`, so it composes with tower middleware.

use super::{Call, ClientError, ServiceClient, Transport};
use bytes::Bytes;
use http::{Request, Response};
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

impl<T: Transport> tower::Service<Request<Bytes>> for ServiceClient<T> {
    type Response = Response<Bytes>;
    type Error = ClientError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, ClientError>> + Send>>;

    /// Ready once the view has its first registry answer and some instance
    /// would admit a request; `Pending` otherwise, woken by the next change
    /// of an instance or breaker. Put tower's `load_shed` or `timeout` in
    /// front to fail fast instead of waiting.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        self.waiting.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let call = Call::new(request, self.inner.config.deadline);
        let (deadline, allowed) = (call.deadline, call.allowed);
        let answer = self.waiting.call(call);
        Box::pin(async move {
            // Every attempt and backoff keeps to the deadline; this bounds a
            // wait for readiness between attempts.
            tokio::time::timeout_at(deadline, answer)
                .await
                .unwrap_or(Err(ClientError::DeadlineExceeded { deadline: allowed }))
        })
    }
}
