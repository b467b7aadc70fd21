//! `ServiceClient` as a `tower::Service`, so it composes with tower
//! middleware — and with clients built on tower, such as tonic's.

use super::{balance::has_candidate, gate, BoxError, Call, ClientError, ResponseBody};
use super::{ServiceClient, Transport};
use crate::deadline;
use bytes::Bytes;
use http::{Request, Response};
use std::sync::Arc;
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
        loop {
            let view = &self.inner.view;
            if view.is_synced() && has_candidate(view, &[]) {
                self.wait = None;
                return Poll::Ready(Ok(()));
            }
            std::task::ready!(gate::poll_change(&mut self.wait, || view.changes(), cx));
        }
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let settings = &inner.settings;
            let call = Call::streaming(request, settings.deadline, settings.retries.replay_limit)
                .await?
                .within(deadline::current());
            // The instance that made this handle ready may be gone by now:
            // then the call fails fast, as `send`'s do.
            inner.call(call).await
        })
    }
}
