//! [`OverloadLayer`]: sheds past a concurrency limit, and reports load on
//! every answer it lets through (see the [module's documentation](super)).

use super::report::{LoadReport, LOAD_METRICS_HEADER};
use crate::deadline::refusal;
use crate::wire::{ErrorCode, WireError};
use bytes::Bytes;
use futures_util::future::{self, Either, Ready};
use http::{header::RETRY_AFTER, HeaderValue, Request, Response};
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc, Mutex, PoisonError, RwLock,
    },
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::time::Instant;

/// How often the load figures are measured and the header made anew.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Serves at most `max_in_flight` requests at once and sheds the rest with
/// 503 `overloaded`; reports load on every answer it lets through. Clones
/// share their count: put one layer in front of the handlers whose
/// concurrency it bounds.
#[derive(Debug, Clone)]
pub struct OverloadLayer {
    shared: Arc<Shared>,
}

/// What the layer counts, for a service's `/_metrics`.
#[derive(Debug, Clone, Default)]
pub struct OverloadMetrics {
    /// Requests shed (answered 503 `overloaded`, unserved).
    pub shed: Counter,
    /// Requests being served now.
    pub in_flight: Gauge,
}

#[derive(Debug)]
struct Shared {
    max_in_flight: u32,
    /// What the application can serve at once, if it knows (0: it does
    /// not): the utilization reported is the mean in flight over it, else
    /// over `max_in_flight`.
    capacity: AtomicU32,
    in_flight: AtomicU32,
    /// Requests answered, ever: the load sampler reads its rate.
    answered: AtomicU64,
    /// Time spent serving answered requests, ever, in nanoseconds: its rate
    /// is the mean number in flight (Little's law).
    busy_ns: AtomicU64,
    metrics: OverloadMetrics,
    sampler: Mutex<Sampler>,
    /// The load report as of the last sample, made once per sample.
    header: RwLock<HeaderValue>,
}

impl OverloadLayer {
    /// A layer serving at most `max_in_flight` requests at once (at least
    /// one).
    pub fn new(max_in_flight: u32) -> Self {
        Self {
            shared: Arc::new(Shared {
                max_in_flight: max_in_flight.max(1),
                capacity: AtomicU32::new(0),
                in_flight: AtomicU32::new(0),
                answered: AtomicU64::new(0),
                busy_ns: AtomicU64::new(0),
                metrics: OverloadMetrics::default(),
                sampler: Mutex::new(Sampler::new(Instant::now())),
                header: RwLock::new(LoadReport::default().to_header_value()),
            }),
        }
    }

    /// Its counters, to read or to register by names of your own.
    pub fn metrics(&self) -> OverloadMetrics {
        self.shared.metrics.clone()
    }

    /// Registers its counters in `registry` as `shed` (requests shed) and
    /// `in_flight` (requests being served), under the registry's prefix.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let metrics = self.metrics();
        let limit = self.shared.max_in_flight;
        registry.register(
            "shed",
            format!("Requests shed unserved (503 overloaded): {limit} were being served, the most"),
            metrics.shed,
        );
        registry.register(
            "in_flight",
            "Requests being served now (behind the overload layer)",
            metrics.in_flight,
        );
    }

    /// The limit it sheds past.
    pub fn max_in_flight(&self) -> u32 {
        self.shared.max_in_flight
    }

    /// Tells it how many requests the application serves at once (`None`:
    /// it does not know), for the utilization it reports: the mean number
    /// in flight over this capacity — above 1.0 when requests queue past
    /// it — else over the limit it sheds past. An application whose work
    /// has a known width (a pool of workers, of connections) says so here,
    /// at any time; its callers then see it fill before it sheds.
    pub fn set_capacity(&self, capacity: Option<u32>) {
        let capacity = capacity.unwrap_or(0);
        self.shared.capacity.store(capacity, Ordering::Relaxed);
    }
}

impl<S> tower::Layer<S> for OverloadLayer {
    type Service = Overload<S>;

    fn layer(&self, inner: S) -> Overload<S> {
        Overload {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service [`OverloadLayer`] makes.
#[derive(Debug, Clone)]
pub struct Overload<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B, R> tower::Service<Request<B>> for Overload<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    R: From<Bytes>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Either<Served<S::Future>, Ready<Result<Response<R>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = &self.shared;
        let claimed = shared
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < shared.max_in_flight).then_some(n + 1)
            });
        if claimed.is_err() {
            shared.metrics.shed.inc();
            return Either::Right(future::ok(shed(shared.max_in_flight)));
        }
        shared.metrics.in_flight.inc();
        Either::Left(Served {
            inner: self.inner.call(request),
            serving: Some(Serving {
                shared: Arc::clone(shared),
                started: Instant::now(),
            }),
        })
    }
}

impl Shared {
    /// What utilization is measured against (see
    /// [`OverloadLayer::set_capacity`]).
    fn capacity(&self) -> u32 {
        match self.capacity.load(Ordering::Relaxed) {
            0 => self.max_in_flight,
            capacity => capacity,
        }
    }
}

/// The answer to a request shed: 503, code `overloaded`, `Retry-After: 1`.
fn shed<R: From<Bytes>>(limit: u32) -> Response<R> {
    let error = WireError::new(
        ErrorCode::Overloaded,
        format!("serving {limit} requests at once, its most: try another instance"),
    );
    let mut response = refusal(&error);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

pin_project_lite::pin_project! {
    /// A request let through: counted in flight until it is answered, its
    /// answer given the load report.
    #[derive(Debug)]
    pub struct Served<F> {
        #[pin]
        inner: F,
        serving: Option<Serving>,
    }
}

impl<F, R, E> Future for Served<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut answer = ready!(this.inner.poll(cx));
        if let Some(serving) = this.serving.take() {
            let header = serving.answered();
            if let Ok(response) = &mut answer {
                response.headers_mut().insert(LOAD_METRICS_HEADER, header);
            }
        }
        Poll::Ready(answer)
    }
}

/// One request in flight; dropped unanswered (the caller went away), it
/// still frees its place.
#[derive(Debug)]
struct Serving {
    shared: Arc<Shared>,
    started: Instant,
}

impl Serving {
    /// The request was answered: counts it, and gives the load report to
    /// answer with.
    fn answered(self) -> HeaderValue {
        let now = Instant::now();
        let took = u64::try_from((now - self.started).as_nanos()).unwrap_or(u64::MAX);
        let shared = &self.shared;
        shared.answered.fetch_add(1, Ordering::Relaxed);
        shared.busy_ns.fetch_add(took, Ordering::Relaxed);
        // One answer a tenth of a second measures; the others don't wait
        // for it.
        if let Ok(mut sampler) = shared.sampler.try_lock() {
            if let Some(report) = sampler.sample(shared, now) {
                *shared
                    .header
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = report.to_header_value();
            }
        }
        let header = shared.header.read().unwrap_or_else(PoisonError::into_inner);
        header.clone()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.shared.metrics.in_flight.dec();
    }
}

/// The figures as of the last sample, to take the next one's rates from.
#[derive(Debug)]
struct Sampler {
    at: Instant,
    answered: u64,
    busy_ns: u64,
    cpu: Option<CpuTime>,
}

impl Sampler {
    fn new(now: Instant) -> Self {
        Self {
            at: now,
            answered: 0,
            busy_ns: 0,
            cpu: CpuTime::now(),
        }
    }

    /// The load since the last sample, if a sample is due.
    fn sample(&mut self, shared: &Shared, now: Instant) -> Option<LoadReport> {
        let elapsed = now - self.at;
        if elapsed < SAMPLE_EVERY {
            return None;
        }
        let answered = shared.answered.load(Ordering::Relaxed);
        let busy_ns = shared.busy_ns.load(Ordering::Relaxed);
        let cpu = CpuTime::now();
        let seconds = elapsed.as_secs_f64();
        let rps = (answered - self.answered) as f64 / seconds;
        let mean_in_flight = (busy_ns - self.busy_ns) as f64 / 1e9 / seconds;
        let cpu_utilization = match (self.cpu, cpu) {
            (Some(before), Some(after)) => Some(after.utilization_since(before, elapsed)),
            _ => None,
        };
        *self = Self {
            at: now,
            answered,
            busy_ns,
            cpu,
        };
        Some(LoadReport {
            cpu_utilization,
            application_utilization: Some(mean_in_flight / f64::from(shared.capacity())),
            rps_fractional: Some(rps),
        })
    }
}

/// The CPU time this process has used, as Linux counts it.
#[derive(Debug, Clone, Copy)]
struct CpuTime {
    /// User and system time, in clock ticks.
    ticks: u64,
}

/// Clock ticks per second in `/proc/<pid>/stat`: `USER_HZ`, 100 on every
/// Linux architecture.
const TICKS_PER_SECOND: f64 = 100.0;

impl CpuTime {
    /// Read from `/proc/self/stat`; `None` where there is none (not Linux).
    fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces: count from its ')'.
        let after_name = &stat[stat.rfind(')')? + 1..];
        let mut fields = after_name.split_whitespace();
        // Fields 14 and 15 (utime, stime); the first after ')' is field 3.
        let utime: u64 = fields.nth(11)?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        Some(Self {
            ticks: utime + stime,
        })
    }

    /// The share of the machine's cores used since `before`, `elapsed`
    /// ago.
    fn utilization_since(self, before: Self, elapsed: Duration) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let used = self.ticks.saturating_sub(before.ticks) as f64 / TICKS_PER_SECOND;
        (used / elapsed.as_secs_f64() / cores as f64).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tokio::sync::Semaphore;
    use tower::{Layer, Service, ServiceExt};

    /// A handler that answers once `gate` lets it.
    fn handler(
        gate: Arc<Semaphore>,
    ) -> impl Service<Request<()>, Response = Response<Bytes>, Error = Infallible, Future = impl Send>
           + Clone {
        tower::service_fn(move |_: Request<()>| {
            let gate = Arc::clone(&gate);
            async move {
                let _permit = gate.acquire().await;
                Ok::<_, Infallible>(Response::new(Bytes::from_static(b"ok")))
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn past_its_limit_a_request_is_shed_at_once_and_the_rest_are_served() {
        let layer = OverloadLayer::new(2);
        let gate = Arc::new(Semaphore::new(0));
        let service = layer.layer(handler(Arc::clone(&gate)));
        let first = tokio::spawn(service.clone().oneshot(Request::new(())));
        let second = tokio::spawn(service.clone().oneshot(Request::new(())));
        tokio::task::yield_now().await;
        let shed = service.clone().oneshot(Request::new(())).await.expect("ok");
        assert_eq!(shed.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()[RETRY_AFTER], "1");
        let body: serde_json::Value = serde_json::from_slice(shed.body()).expect("json");
        assert_eq!(body["error"]["code"], "overloaded");
        assert_eq!(layer.metrics().shed.get(), 1);
        assert_eq!(layer.metrics().in_flight.get(), 2);

        // Served: they answer with a load report; their places are free again.
        tokio::time::advance(SAMPLE_EVERY).await;
        gate.add_permits(2);
        for request in [first, second] {
            let answer = request.await.expect("joined").expect("ok");
            assert_eq!(answer.status(), http::StatusCode::OK);
            let report = LoadReport::parse(&answer.headers()[LOAD_METRICS_HEADER]);
            assert!(report.is_some(), "{:?}", answer.headers());
        }
        assert_eq!(layer.metrics().in_flight.get(), 0);
        let again = service.oneshot(Request::new(())).await;
        // The third is let through now: it waits on the gate like the others.
        gate.add_permits(1);
        assert_eq!(again.expect("ok").status(), http::StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn the_report_says_how_full_it_was_over_the_last_sample() {
        let layer = OverloadLayer::new(4);
        let service = layer.layer(tower::service_fn(|_: Request<()>| async {
            // Each answer takes 10 ms of (paused) time.
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<_, Infallible>(Response::new(Bytes::new()))
        }));
        // Two at a time for 200 ms: 2 in flight of 4, 200 answers a second.
        let mut last = None;
        for _ in 0..10 {
            let (a, b) = tokio::join!(
                service.clone().oneshot(Request::new(())),
                service.clone().oneshot(Request::new(()))
            );
            let (a, b) = (a.expect("ok"), b.expect("ok"));
            assert!(b.headers().contains_key(LOAD_METRICS_HEADER));
            last = LoadReport::parse(&a.headers()[LOAD_METRICS_HEADER]);
        }
        let report = last.expect("a report");
        let utilization = report.application_utilization.expect("utilization");
        assert!((utilization - 0.5).abs() < 0.05, "{report:?}");
        let rps = report.rps_fractional.expect("rps");
        assert!((rps - 200.0).abs() < 20.0, "{report:?}");
        // Told it serves two at once, the same load fills it.
        layer.set_capacity(Some(2));
        for _ in 0..20 {
            let (a, _) = tokio::join!(
                service.clone().oneshot(Request::new(())),
                service.clone().oneshot(Request::new(()))
            );
            last = LoadReport::parse(&a.expect("ok").headers()[LOAD_METRICS_HEADER]);
        }
        let utilization = last.and_then(|r| r.application_utilization);
        assert!(
            utilization.is_some_and(|u| (u - 1.0).abs() < 0.1),
            "{utilization:?}"
        );
    }

    #[test]
    fn this_process_cpu_time_is_counted_on_linux() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let before = CpuTime::now().expect("/proc/self/stat");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let after = loop {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            let now = CpuTime::now().expect("/proc/self/stat");
            if now.ticks > before.ticks || started.elapsed() > Duration::from_secs(5) {
                break now;
            }
        };
        std::hint::black_box(x);
        assert!(
            after.ticks > before.ticks,
            "5 s of work counted no CPU time"
        );
        let share = after.utilization_since(before, started.elapsed());
        assert!(share > 0.0 && share <= 1.0, "{share}");
    }
}
