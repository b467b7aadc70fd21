//! Per-request overhead of Beacon's client against a bare hyper-util client,
//! side by side in one run, to the same backend on loopback.
//!
//! ```sh
//! cargo run --release --example client_overhead
//! ```
//!
//! The backend and the registry run on their own threads (their own
//! runtimes); the callers share one multi-threaded runtime. Printed as a
//! markdown table; the ratio column is Beacon / bare.

use beacon::{
    net::http::{http_client, read_body},
    wire::{Address, Registration},
    ClientConfig, Lease, RegistryClient, Resolver, ResolverConfig, ServiceClient,
};
use bytes::Bytes;
use http_body_util::Full;
use std::{error::Error, future::Future, sync::Arc, time::Duration};
use tokio::time::Instant;

const SEQUENTIAL: usize = 20_000;
const CONCURRENCY: usize = 32;
const LOAD_FOR: Duration = Duration::from_secs(4);

/// Runs `serve` on a thread of its own with a current-thread runtime.
fn spawn_server<F>(serve: impl FnOnce(tokio::net::TcpListener) -> F + Send + 'static) -> String
where
    F: Future<Output = ()> + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            serve(listener).await;
        });
    });
    format!("http://{}", rx.recv().expect("server address"))
}

#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    completed: u64,
    load_time: Duration,
}

impl Stats {
    fn quantile(&mut self, q: f64) -> Duration {
        self.latencies.sort();
        let at = ((self.latencies.len() as f64 - 1.0) * q) as usize;
        self.latencies[at]
    }

    fn throughput(&self) -> f64 {
        self.completed as f64 / self.load_time.as_secs_f64()
    }
}

/// Sequential latency, measured with the two clients alternating request by
/// request so that neither gets a warmer machine.
async fn sequential<A, AF, B, BF>(a: &A, b: &B) -> (Stats, Stats)
where
    A: Fn() -> AF,
    AF: Future<Output = ()>,
    B: Fn() -> BF,
    BF: Future<Output = ()>,
{
    let (mut sa, mut sb) = (Stats::default(), Stats::default());
    for round in 0..SEQUENTIAL + 500 {
        let started = Instant::now();
        a().await;
        let took_a = started.elapsed();
        let started = Instant::now();
        b().await;
        let took_b = started.elapsed();
        if round >= 500 {
            sa.latencies.push(took_a);
            sb.latencies.push(took_b);
        }
    }
    (sa, sb)
}

/// Requests completed by `CONCURRENCY` workers in `LOAD_FOR`.
async fn load<F, Fut>(call: F) -> u64
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let until = Instant::now() + LOAD_FOR;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < until {
                    call().await;
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker");
    }
    total
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let backend = spawn_server(|listener| async move {
        let app = axum::Router::new().route(
            "/ratings/camera",
            axum::routing::get(|| async { r#"{"thing":"camera","stars":4.5}"# }),
        );
        let _ = axum::serve(listener, app).await;
    });
    let registry_url = spawn_server(|listener| async move {
        let _ =
            beacon_registry::server::run(listener, Default::default(), Default::default()).await;
    });

    let registry = RegistryClient::from_list(&registry_url, None)?;
    let lease = Lease::start(
        registry.clone(),
        "ratings".parse()?,
        "ratings-1".parse()?,
        Registration::new(Address::new(&backend)?),
    );
    lease.registered().await;
    let resolver = Resolver::new(registry, ResolverConfig::default());
    let beacon = ServiceClient::new(&resolver, &"ratings".parse()?, ClientConfig::default());

    let bare = Arc::new(http_client(Duration::from_millis(300)));
    let uri: http::Uri = format!("{backend}/ratings/camera").parse()?;
    let bare_call = move || {
        let (bare, uri) = (Arc::clone(&bare), uri.clone());
        async move {
            let request = http::Request::get(uri)
                .body(Full::new(Bytes::new()))
                .expect("request");
            let response = bare.request(request).await.expect("bare call");
            read_body(response.into_body(), 1 << 20)
                .await
                .expect("body");
        }
    };
    let beacon_call = move || {
        let beacon = beacon.clone();
        async move {
            beacon.get("/ratings/camera").await.expect("beacon call");
        }
    };
    let (mut bare_stats, mut beacon_stats) = sequential(&bare_call, &beacon_call).await;
    // Throughput in two alternating rounds each, best round kept.
    for _ in 0..2 {
        bare_stats.completed = bare_stats.completed.max(load(bare_call.clone()).await);
        beacon_stats.completed = beacon_stats.completed.max(load(beacon_call.clone()).await);
    }
    bare_stats.load_time = LOAD_FOR;
    beacon_stats.load_time = LOAD_FOR;

    println!(
        "| client | p50 (1 in flight) | p99 (1 in flight) | req/s ({CONCURRENCY} in flight) |"
    );
    println!("|---|---|---|---|");
    let mut rows = Vec::new();
    for (name, s) in [
        ("bare hyper-util", &mut bare_stats),
        ("beacon ServiceClient", &mut beacon_stats),
    ] {
        let row = (s.quantile(0.5), s.quantile(0.99), s.throughput());
        println!("| {name} | {:?} | {:?} | {:.0} |", row.0, row.1, row.2);
        rows.push(row);
    }
    let ratio = |b: Duration, a: Duration| b.as_secs_f64() / a.as_secs_f64();
    println!(
        "| ratio beacon/bare | {:.2} | {:.2} | {:.2} |",
        ratio(rows[1].0, rows[0].0),
        ratio(rows[1].1, rows[0].1),
        rows[1].2 / rows[0].2
    );
    println!(
        "\n{SEQUENTIAL} alternating sequential requests per client, then {CONCURRENCY} workers for {LOAD_FOR:?} (best of 2);"
    );
    println!("reproduce: cargo run --release --example client_overhead");
    lease.shutdown().await?;
    Ok(())
}
