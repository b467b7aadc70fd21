//! The registry against etcd on the same operations: heartbeats (lease
//! keep-alives), resolving 10k instances (a range over 10k keys), waking
//! 1000 watchers on one change, and memory per instance.

use crate::topology::{free_port, rss_kib};
use beacon::{
    wire::{Address, InstanceId, Registration, ServiceName, WatchQuery},
    RegistryClient, RegistryClientConfig,
};
use beacon_kit::process::Service;
use beacon_registry::store::etcd::EtcdClient;
use serde::Serialize;
use std::{
    fmt::Write as _,
    future::Future,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::time::Instant;

/// Sizes of a registry benchmark run.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Instances heartbeating, and how long.
    pub heartbeat_instances: usize,
    /// How long heartbeats are sent.
    pub heartbeat_for: Duration,
    /// Instances in the resolved service.
    pub resolve_instances: usize,
    /// Parked watchers.
    pub watchers: usize,
    /// Instances for the memory measurement.
    pub memory_instances: usize,
}

impl Sizes {
    /// `make bench`.
    pub fn full() -> Self {
        Self {
            heartbeat_instances: 1000,
            heartbeat_for: Duration::from_secs(3),
            resolve_instances: 10_000,
            watchers: 1000,
            memory_instances: 100_000,
        }
    }

    /// `make bench-quick`.
    pub fn quick() -> Self {
        Self {
            heartbeat_instances: 200,
            heartbeat_for: Duration::from_secs(1),
            resolve_instances: 2_000,
            watchers: 200,
            memory_instances: 5_000,
        }
    }
}

/// One operation measured on both systems.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    /// What was measured.
    pub what: String,
    /// Beacon's registry.
    pub registry: f64,
    /// etcd.
    pub etcd: f64,
    /// Unit of both numbers.
    pub unit: &'static str,
    /// Whether more is better (throughput) or less is (latency, memory).
    pub higher_is_better: bool,
}

/// The registry-vs-etcd results.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryResults {
    /// Each operation.
    pub pairs: Vec<Pair>,
}

impl RegistryResults {
    /// A markdown section.
    pub fn markdown(&self) -> String {
        let mut md = String::from(
            "\n## Registry against etcd\n\nThe same operations on Beacon's registry (memory store) and on etcd \
             (a single member, through its v3 JSON gateway, which is how the registry's etcd store talks to it), \
             both over HTTP on loopback. etcd is a durable, replicated store: the reference, not a peer.\n\n\
             | operation | beacon-registry | etcd | registry advantage |\n|---|---|---|---|\n",
        );
        for p in &self.pairs {
            let advantage = if p.higher_is_better {
                p.registry / p.etcd
            } else {
                p.etcd / p.registry
            };
            let _ = writeln!(
                md,
                "| {} | {:.2} {} | {:.2} {} | {advantage:.1}x |",
                p.what, p.registry, p.unit, p.etcd, p.unit
            );
        }
        md
    }
}

/// Runs `total` operations on `workers` tasks; returns the elapsed time.
async fn spread<F, Fut>(workers: usize, total: usize, op: F) -> Duration
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (next, op) = (Arc::clone(&next), op.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return;
                    }
                    op(n).await;
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    started.elapsed()
}

/// Operations completed by `workers` tasks in `duration`, per second.
async fn rate<F, Fut>(workers: usize, duration: Duration, op: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (done, op) = (Arc::clone(&done), op.clone());
            tokio::spawn(async move {
                let mut n = w;
                while Instant::now() < until {
                    op(n).await;
                    done.fetch_add(1, Ordering::Relaxed);
                    n += workers;
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    done.load(Ordering::Relaxed) as f64 / duration.as_secs_f64()
}

fn percentile(mut samples: Vec<Duration>, q: f64) -> f64 {
    samples.sort();
    samples
        .get(((samples.len().max(1) - 1) as f64 * q).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

struct Etcd {
    child: Child,
    client: Arc<EtcdClient>,
    data: std::path::PathBuf,
}

impl Etcd {
    async fn start() -> Result<Self, String> {
        let (client_port, peer_port) = (free_port(), free_port());
        let data = std::env::temp_dir().join(format!(
            "beacon-bench-etcd-{}-{client_port}",
            std::process::id()
        ));
        let url = format!("http://127.0.0.1:{client_port}");
        let child = Command::new("etcd")
            .args([
                format!("--data-dir={}", data.display()),
                format!("--listen-client-urls={url}"),
                format!("--advertise-client-urls={url}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
                "--logger=zap".into(),
                "--log-level=error".into(),
                "--quota-backend-bytes=8589934592".into(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run etcd (apt-get install etcd-server): {e}"))?;
        let client = Arc::new(EtcdClient::new(vec![url]));
        let started = Instant::now();
        while client.status().await.is_err() {
            if started.elapsed() > Duration::from_secs(15) {
                return Err("etcd did not start".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            child,
            client,
            data,
        })
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn name(raw: &str) -> Result<ServiceName, String> {
    raw.parse().map_err(|e| format!("{e}"))
}

fn id(n: usize) -> InstanceId {
    // Always valid: "i" followed by digits.
    InstanceId::new(&format!("i{n}")).unwrap_or_else(|_| unreachable!("i<digits> is a valid id"))
}

/// Measures the registry binary and etcd on the same operations.
pub async fn run(
    registry_binary: &std::path::Path,
    sizes: Sizes,
) -> Result<RegistryResults, String> {
    let registry = Service::start_with_log(
        registry_binary,
        &["--listen", "127.0.0.1:0"],
        "warn,beacon_registry::server=info",
    )?;
    // Generous: a thousand watchers connect at once on a small machine.
    let config = RegistryClientConfig {
        request_timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(10),
    };
    let client = Arc::new(
        RegistryClient::new([registry.url.as_str()], None, config).map_err(|e| e.to_string())?,
    );
    let etcd = Etcd::start().await?;
    let mut pairs = Vec::new();
    let registration = Registration {
        ttl: Duration::from_secs(3600),
        ..Registration::new(Address::new("http://127.0.0.1:9000").map_err(|e| e.to_string())?)
    };
    let value = vec![b'x'; 100]; // about the size of a registration record

    // Heartbeats per second.
    let hb = name("hb")?;
    let n = sizes.heartbeat_instances;
    register_many(&client, &hb, n, &registration).await;
    let beats = {
        let (client, hb) = (Arc::clone(&client), hb.clone());
        rate(64, sizes.heartbeat_for, move |i| {
            let (client, hb) = (Arc::clone(&client), hb.clone());
            async move {
                let _ = client.heartbeat(&hb, &id(i % n)).await;
            }
        })
        .await
    };
    let leases: Arc<Vec<i64>> = {
        let mut leases = Vec::with_capacity(n);
        for _ in 0..n {
            leases.push(etcd.client.grant(3600).await.map_err(|e| e.to_string())?);
        }
        Arc::new(leases)
    };
    let keepalives = {
        let (etcd_client, leases) = (Arc::clone(&etcd.client), Arc::clone(&leases));
        rate(64, sizes.heartbeat_for, move |i| {
            let (etcd_client, leases) = (Arc::clone(&etcd_client), Arc::clone(&leases));
            async move {
                let _ = etcd_client.keep_alive(leases[i % leases.len()]).await;
            }
        })
        .await
    };
    pairs.push(Pair {
        what: format!("heartbeats/s ({n} instances, 64 in flight; etcd: lease keep-alive)"),
        registry: beats,
        etcd: keepalives,
        unit: "/s",
        higher_is_better: true,
    });

    // Resolving a service of many instances.
    let bulk = name("bulk")?;
    let m = sizes.resolve_instances;
    register_many(&client, &bulk, m, &registration).await;
    {
        let (etcd_client, value) = (Arc::clone(&etcd.client), value.clone());
        spread(64, m, move |i| {
            let (etcd_client, value) = (Arc::clone(&etcd_client), value.clone());
            async move {
                let _ = etcd_client
                    .put(&format!("/bench/bulk/i{i}"), &value, 0)
                    .await;
            }
        })
        .await;
    }
    let mut registry_times = Vec::new();
    let mut etcd_times = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        client.resolve(&bulk).await.map_err(|e| e.to_string())?;
        registry_times.push(started.elapsed());
        let started = Instant::now();
        etcd.client
            .range_prefix("/bench/bulk/")
            .await
            .map_err(|e| e.to_string())?;
        etcd_times.push(started.elapsed());
    }
    pairs.push(Pair {
        what: format!("resolve {m} instances, p50 (etcd: range over {m} keys)"),
        registry: percentile(registry_times.clone(), 0.5),
        etcd: percentile(etcd_times.clone(), 0.5),
        unit: "ms",
        higher_is_better: false,
    });

    // Waking many watchers with one change.
    let fan = name("fan")?;
    let w = sizes.watchers;
    client
        .register(&fan, &id(0), &registration)
        .await
        .map_err(|e| e.to_string())?;
    let index = client.resolve(&fan).await.map_err(|e| e.to_string())?.index;
    let watchers: Vec<_> = (0..w)
        .map(|_| {
            let (client, fan) = (Arc::clone(&client), fan.clone());
            tokio::spawn(async move {
                let _ = client
                    .watch(
                        &fan,
                        WatchQuery {
                            index,
                            wait: Duration::from_secs(60),
                        },
                    )
                    .await;
                Instant::now()
            })
        })
        .collect();
    let metrics_url = format!("{}/_metrics", registry.url);
    let waiting = Instant::now();
    loop {
        let text = fetch_text(&metrics_url).await;
        let parked: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("beacon_registry_parked_watchers "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if parked >= w {
            break;
        }
        if waiting.elapsed() > Duration::from_secs(60) {
            return Err(format!("only {parked} of {w} watchers parked"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let changed = Instant::now();
    client
        .register(&fan, &id(1), &registration)
        .await
        .map_err(|e| e.to_string())?;
    let mut last = changed;
    for watcher in watchers {
        if let Ok(woke) = watcher.await {
            last = last.max(woke);
        }
    }
    let registry_fanout = (last - changed).as_secs_f64() * 1000.0;
    let mut streams = Vec::new();
    for _ in 0..w {
        streams.push(
            etcd.client
                .watch("/bench/fan/", 0)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let waiters: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                loop {
                    match stream.next().await {
                        Ok(beacon_registry::store::etcd::WatchMessage::Changes(_)) | Err(_) => {
                            return Instant::now()
                        }
                        Ok(_) => {}
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await; // every stream created
    let changed = Instant::now();
    etcd.client
        .put("/bench/fan/x", &value, 0)
        .await
        .map_err(|e| e.to_string())?;
    let mut last = changed;
    for waiter in waiters {
        if let Ok(woke) = waiter.await {
            last = last.max(woke);
        }
    }
    let etcd_fanout = (last - changed).as_secs_f64() * 1000.0;
    pairs.push(Pair {
        what: format!("wake {w} watchers on one change (until the last)"),
        registry: registry_fanout,
        etcd: etcd_fanout,
        unit: "ms",
        higher_is_better: false,
    });

    // Memory per instance.
    let k = sizes.memory_instances;
    let registry_pid = registry.pid();
    let before = rss_kib(registry_pid).unwrap_or(0);
    let mem = name("mem")?;
    register_many(&client, &mem, k, &registration).await;
    let registry_bytes =
        rss_kib(registry_pid).unwrap_or(0).saturating_sub(before) as f64 * 1024.0 / k as f64;
    let etcd_pid = etcd.child.id();
    let before = rss_kib(etcd_pid).unwrap_or(0);
    {
        let (etcd_client, value) = (Arc::clone(&etcd.client), value.clone());
        spread(64, k, move |i| {
            let (etcd_client, value) = (Arc::clone(&etcd_client), value.clone());
            async move {
                if let Ok(lease) = etcd_client.grant(3600).await {
                    let _ = etcd_client
                        .put(&format!("/bench/mem/i{i}"), &value, lease)
                        .await;
                }
            }
        })
        .await;
    }
    let etcd_bytes =
        rss_kib(etcd_pid).unwrap_or(0).saturating_sub(before) as f64 * 1024.0 / k as f64;
    pairs.push(Pair {
        what: format!("memory per instance at {k} instances (etcd: key + lease)"),
        registry: registry_bytes,
        etcd: etcd_bytes,
        unit: "bytes",
        higher_is_better: false,
    });
    Ok(RegistryResults { pairs })
}

/// Registers `count` instances `i0..` of `service` through the registry, 64 at a time.
async fn register_many(
    client: &Arc<RegistryClient>,
    service: &ServiceName,
    count: usize,
    registration: &Registration,
) {
    let (client, service, registration) =
        (Arc::clone(client), service.clone(), registration.clone());
    spread(64, count, move |i| {
        let (client, service, registration) =
            (Arc::clone(&client), service.clone(), registration.clone());
        async move {
            let _ = client.register(&service, &id(i), &registration).await;
        }
    })
    .await;
}

async fn fetch_text(url: &str) -> String {
    let http = beacon::transport::http_client(Duration::from_secs(1));
    let Ok(request) = http::Request::get(url).body(http_body_util::Full::new(bytes::Bytes::new()))
    else {
        return String::new();
    };
    match http.request(request).await {
        Ok(response) => beacon::transport::read_body(response.into_body(), 1 << 24)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}
