//! What a registration, a heartbeat and a resolve cost on the registry's
//! etcd store compared with its memory store: the same calls through the
//! same client, side by side, repeated on fresh stores.
//!
//! Starts a single-member etcd on free loopback ports (data in a temp dir,
//! both gone when done) and one registry per store in this process, and times sequential calls
//! of each kind against each.

use crate::{registry_bench::etcd::Etcd, stats::Spread};
use beacon::{
    wire::{Address, InstanceId, Registration, ServiceName},
    RegistryClient,
};
use beacon_registry::server::{self, Backend, Options};
use std::{error::Error, fmt::Write as _, time::Duration};
use tokio::{net::TcpListener, time::Instant};
use tokio_util::sync::CancellationToken;

async fn registry(
    backend: Backend,
    stop: &CancellationToken,
) -> Result<RegistryClient, Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let options = Options {
        backend,
        ..Options::default()
    };
    tokio::spawn(server::run(listener, options, stop.clone()));
    let client = RegistryClient::from_list(&url, None)?;
    for _ in 0..200 {
        if client.services().await.is_ok() {
            return Ok(client);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("registry did not start".into())
}

/// Mean and p99 of `CALLS` sequential runs of `call`.
async fn time<F, Fut>(calls: usize, mut call: F) -> (Duration, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut took = Vec::with_capacity(calls);
    for n in 0..calls {
        let started = Instant::now();
        call(n).await;
        took.push(started.elapsed());
    }
    let mean = took.iter().sum::<Duration>() / calls.max(1) as u32;
    took.sort();
    (
        mean,
        took.get(calls * 99 / 100).copied().unwrap_or_default(),
    )
}

/// Mean and p99 of register, heartbeat and resolve on one store.
type Row = (&'static str, [(Duration, Duration); 3]);

/// Runs the comparison `runs` times with `calls` calls of each kind;
/// returns a markdown section of medians with their ranges.
pub async fn run(calls: usize, runs: usize) -> Result<String, Box<dyn Error>> {
    let mut all = Vec::new();
    for _ in 0..runs {
        all.push(once(calls).await?);
    }
    Ok(markdown(calls, &all))
}

fn markdown(calls: usize, runs: &[Vec<Row>]) -> String {
    let mut md = format!(
        "\n## The registry's etcd store against its memory store\n\n{calls} sequential calls of each kind \
         through `RegistryClient`, one registry per store, etcd single-member on loopback; medians of {} \
         runs (each on fresh stores) with the range in brackets, in milliseconds.\n\n\
         | store | register mean / p99 | heartbeat mean / p99 | resolve ({calls} instances) mean / p99 |\n|---|---|---|---|\n",
        runs.len()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let figure = |row: usize, op: usize, p99: bool| {
        Spread::of(runs.iter().map(|run| {
            let (mean, high) = run[row].1[op];
            ms(if p99 { high } else { mean })
        }))
        .map_or("—".to_owned(), |s| s.show(2))
    };
    for (row, name) in ["memory", "etcd"].into_iter().enumerate() {
        let _ = writeln!(
            md,
            "| {name} | {} / {} | {} / {} | {} / {} |",
            figure(row, 0, false),
            figure(row, 0, true),
            figure(row, 1, false),
            figure(row, 1, true),
            figure(row, 2, false),
            figure(row, 2, true),
        );
    }
    let ratio = |op: usize| {
        Spread::of(
            runs.iter()
                .map(|run| ms(run[1].1[op].0) / ms(run[0].1[op].0)),
        )
        .map_or("—".to_owned(), |s| format!("{}x", s.show(1)))
    };
    let _ = writeln!(
        md,
        "| ratio of means, etcd/memory | {} | {} | {} |",
        ratio(0),
        ratio(1),
        ratio(2)
    );
    md
}

async fn once(calls: usize) -> Result<Vec<Row>, Box<dyn Error>> {
    let etcd = Etcd::start().await?;
    let stop = CancellationToken::new();
    let memory = registry(Backend::Memory, &stop).await?;
    let etcd_store = Backend::Etcd {
        urls: vec![etcd.url.clone()],
        prefix: "/beacon/services/".into(),
    };
    let on_etcd = registry(etcd_store, &stop).await?;

    let service: ServiceName = "bench".parse()?;
    let registration = Registration {
        ttl: Duration::from_secs(60),
        ..Registration::new(Address::new("http://127.0.0.1:9000")?)
    };
    let ids: Vec<InstanceId> = (0..calls)
        .map(|n| format!("i{n}").parse())
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    for (name, client) in [("memory", &memory), ("etcd", &on_etcd)] {
        let register = time(calls, |n| {
            let (client, service, id, registration) = (client, &service, &ids[n], &registration);
            async move {
                client
                    .register(service, id, registration)
                    .await
                    .expect("register");
            }
        })
        .await;
        let heartbeat = time(calls, |n| {
            let (client, service, id) = (client, &service, &ids[n]);
            async move {
                client.heartbeat(service, id).await.expect("heartbeat");
            }
        })
        .await;
        let resolve = time(calls, |_| {
            let (client, service) = (client, &service);
            async move {
                client.resolve(service).await.expect("resolve");
            }
        })
        .await;
        rows.push((name, [register, heartbeat, resolve]));
    }
    stop.cancel();
    Ok(rows)
}
