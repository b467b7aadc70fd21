//! What a registration, a heartbeat and a resolve cost on the registry's
//! etcd store compared with its memory store: the same calls through the
//! same client, side by side in one run.
//!
//! Starts a single-member etcd on free loopback ports (data in a temp dir)
//! and one registry per store in this process, and times sequential calls
//! of each kind against each.

use crate::topology::free_port;
use beacon::{
    wire::{Address, InstanceId, Registration, ServiceName},
    RegistryClient,
};
use beacon_registry::server::{self, Backend, Options};
use std::{error::Error, fmt::Write as _, process::Command, time::Duration};
use tokio::{net::TcpListener, time::Instant};
use tokio_util::sync::CancellationToken;

async fn registry(
    backend: Backend,
    stop: &CancellationToken,
) -> Result<RegistryClient, Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let options = Options {
        token: None,
        backend,
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

/// Runs the comparison with `calls` calls of each kind; returns a markdown section.
pub async fn run(calls: usize) -> Result<String, Box<dyn Error>> {
    let (client_port, peer_port) = (free_port(), free_port());
    let data = std::env::temp_dir().join(format!("beacon-store-costs-{}", std::process::id()));
    let mut etcd = Command::new("etcd")
        .args([
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls=http://127.0.0.1:{client_port}"),
            format!("--advertise-client-urls=http://127.0.0.1:{client_port}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
            "--log-level=error".to_owned(),
            "--logger=zap".to_owned(),
        ])
        .spawn()
        .map_err(|e| format!("cannot run etcd (apt-get install etcd-server): {e}"))?;
    let stop = CancellationToken::new();
    let memory = registry(Backend::Memory, &stop).await?;
    let etcd_store = Backend::Etcd {
        urls: vec![format!("http://127.0.0.1:{client_port}")],
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
        rows.push((name, register, heartbeat, resolve));
    }
    let mut md = format!(
        "\n## The registry's etcd store against its memory store\n\n{calls} sequential calls of each kind through `RegistryClient`, \
         one registry per store, etcd single-member on loopback.\n\n\
         | store | register mean / p99 | heartbeat mean / p99 | resolve ({calls} instances) mean / p99 |\n|---|---|---|---|\n"
    );
    for (name, r, h, q) in &rows {
        let _ = writeln!(
            md,
            "| {name} | {:?} / {:?} | {:?} / {:?} | {:?} / {:?} |",
            r.0, r.1, h.0, h.1, q.0, q.1
        );
    }
    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
    let (m, e) = (&rows[0], &rows[1]);
    let _ = writeln!(
        md,
        "| ratio etcd/memory | {:.1}x | {:.1}x | {:.1}x |",
        ratio(m.1 .0, e.1 .0),
        ratio(m.2 .0, e.2 .0),
        ratio(m.3 .0, e.3 .0)
    );
    stop.cancel();
    let _ = etcd.kill();
    let _ = etcd.wait();
    let _ = std::fs::remove_dir_all(&data);
    Ok(md)
}
