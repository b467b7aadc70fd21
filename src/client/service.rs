//! `ServiceClient` as a `tower::Service`, so it composes with tower middleware.

use super::{ClientError, ServiceClient};
use bytes::Bytes;
use http::{Request, Response};
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

impl tower::Service<Request<Bytes>> for ServiceClient {
    type Response = Response<Bytes>;
    type Error = ClientError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, ClientError>> + Send>>;

    /// Always ready: readiness is decided per instance, by each breaker, when
    /// the request picks where to go; with none admitted the call fails fast.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let client = self.clone();
        Box::pin(async move { client.send(request).await })
    }
}
