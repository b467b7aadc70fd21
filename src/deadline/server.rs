//! The server side: [`DeadlineLayer`] reads [`DEADLINE_HEADER`] in front
//! of a service's handlers, refuses spent budgets and gives each handler's
//! task its caller's deadline (see the [module's documentation](super)).

use super::{parse_budget, DEADLINE, DEADLINE_HEADER};
use crate::wire::{ErrorCode, WireError};
use bytes::Bytes;
use futures_util::future::{self, Either, Ready};
use http::{HeaderValue, Request, Response};
use prometheus_client::metrics::counter::Counter;
use std::task::{Context, Poll};
use tokio::{task::futures::TaskLocalFuture, time::Instant};

/// Reads [`DEADLINE_HEADER`] in front of a service's handlers (see the
/// module's documentation); counts what it refused.
#[derive(Debug, Clone, Default)]
pub struct DeadlineLayer {
    refused: Counter,
}

impl DeadlineLayer {
    /// A layer counting refused requests in a counter of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests refused because their budget was spent when they arrived:
    /// register it with your metrics.
    pub fn refused(&self) -> Counter {
        self.refused.clone()
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadlines<S>;

    fn layer(&self, inner: S) -> Deadlines<S> {
        Deadlines {
            inner,
            refused: self.refused.clone(),
        }
    }
}

/// The service [`DeadlineLayer`] makes.
#[derive(Debug, Clone)]
pub struct Deadlines<S> {
    inner: S,
    refused: Counter,
}

impl<S, B, R> tower::Service<Request<B>> for Deadlines<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    R: From<Bytes>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Either<
        Either<TaskLocalFuture<Instant, S::Future>, S::Future>,
        Ready<Result<Response<R>, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(value) = request.headers().get(DEADLINE_HEADER) else {
            return Either::Left(Either::Right(self.inner.call(request)));
        };
        let budget = match parse_budget(value) {
            Ok(budget) => budget,
            Err(error) => return Either::Right(future::ok(refusal(&error))),
        };
        if budget.is_zero() {
            self.refused.inc();
            let error = WireError::new(
                ErrorCode::DeadlineExpired,
                "the caller's deadline had passed when the request arrived \
                 (beacon-deadline-ms: 0): nothing was done",
            );
            return Either::Right(future::ok(refusal(&error)));
        }
        let deadline = Instant::now() + budget;
        Either::Left(Either::Left(
            DEADLINE.scope(deadline, self.inner.call(request)),
        ))
    }
}

/// The answer to a request refused unserved: `error`'s status and JSON
/// body (the overload layer's sheds too).
pub(crate) fn refusal<R: From<Bytes>>(error: &WireError) -> Response<R> {
    // A body of two strings: serializing it cannot fail.
    let body = serde_json::to_vec(&error.to_body()).unwrap_or_default();
    let mut response = Response::new(R::from(Bytes::from(body)));
    *response.status_mut() = error.code.status();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadline::{remaining, MAX_BUDGET};
    use http::StatusCode;
    use std::{
        convert::Infallible,
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
    };
    use tower::{Layer, ServiceExt};

    /// A handler that counts its calls and answers with the deadline it
    /// saw, as milliseconds left.
    fn handler(
        calls: Arc<AtomicUsize>,
    ) -> impl tower::Service<
        Request<()>,
        Response = Response<Bytes>,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        tower::service_fn(move |_: Request<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let left = remaining();
                let text = left.map_or("none".to_owned(), |d| d.as_millis().to_string());
                Ok::<_, Infallible>(Response::new(Bytes::from(text)))
            }
        })
    }

    async fn send(value: Option<&str>) -> (Response<Bytes>, usize, u64) {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = DeadlineLayer::new();
        let service = layer.layer(handler(Arc::clone(&calls)));
        let mut request = Request::new(());
        if let Some(value) = value {
            request.headers_mut().insert(
                DEADLINE_HEADER,
                HeaderValue::from_str(value).expect("header"),
            );
        }
        let response = service.oneshot(request).await.expect("infallible");
        (
            response,
            calls.load(Ordering::SeqCst),
            layer.refused().get(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_is_what_the_handler_s_calls_get() {
        let (response, calls, refused) = send(Some("300")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), "300");
        assert_eq!((calls, refused), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn no_header_no_deadline() {
        let (response, calls, _) = send(None).await;
        assert_eq!(response.body(), "none");
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_is_refused_before_any_work_and_counted() {
        let (response, calls, refused) = send(Some("0")).await;
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        let body: serde_json::Value = serde_json::from_slice(response.body()).expect("json");
        assert_eq!(body["error"]["code"], "deadline_expired");
        assert_eq!((calls, refused), (0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_malformed_budget_is_a_400_naming_the_header() {
        for bad in ["", "-5", "1.5", "soon", "12ms", " 7"] {
            let (response, calls, refused) = send(Some(bad)).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad:?}");
            let body: serde_json::Value = serde_json::from_slice(response.body()).expect("json");
            assert_eq!(body["error"]["code"], "invalid_deadline", "{bad:?}");
            let message = body["error"]["message"].as_str().expect("message");
            assert!(message.contains("beacon-deadline-ms"), "{message}");
            assert_eq!((calls, refused), (0, 0), "{bad:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_budget_is_cut_to_a_day() {
        let (response, _, _) = send(Some("99999999999999999999999")).await;
        let left: u128 = std::str::from_utf8(response.body())
            .expect("utf-8")
            .parse()
            .expect("ms");
        assert_eq!(left, MAX_BUDGET.as_millis());
    }
}
