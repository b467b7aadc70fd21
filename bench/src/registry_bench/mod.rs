//! The registry against etcd on the same operations: heartbeats (lease
//! keep-alives), resolving 10k instances (a range over 10k keys), waking
//! 1000 watchers on one change, and memory per instance. etcd is reached
//! two ways — its JSON gateway, as the registry's etcd store does, and its
//! gRPC API, as real etcd clients do — and every operation's result is
//! checked: a failed one is counted and reported, never counted as done.
//!
//! # Layout
//!
//! * [`ops`]: running operations concurrently and tallying successes.
//! * [`etcd`]: the etcd process, its gateway and gRPC clients.
//! * `watchers`: waking many parked watchers with one change.
//! * [`fleet`]: a big service, many watchers, a change a second: the
//!   changes feed beside the whole list; `fleet_etcd`: etcd's gRPC
//!   watch on the same fleet.
//! * [`leases`]: many instances on few shared leases, beside etcd's:
//!   memory, keepalives, and how soon a lease's end reaches a watcher.
//! * [`subsets`]: callers on K instances each, chosen by the registry,
//!   at random or all: balance, and churn when an instance or a caller
//!   joins.
//! * `results`: the figures of every run, and their markdown.

pub mod etcd;
pub mod fleet;
mod fleet_etcd;
mod fleet_watch;
pub mod leases;
pub mod ops;
mod results;
pub mod subsets;
pub mod table;
mod watchers;

pub use fleet::FleetSizes;
pub use leases::LeaseSizes;
pub use results::{Pair, RegistryResults};
pub use subsets::SubsetSizes;

use crate::topology::rss_kib;
use beacon::{
    wire::{Address, InstanceId, Registration, ServiceName},
    RegistryClient, RegistryClientConfig,
};
use beacon_kit::process::Service;
use etcd::{count_prefix, range_prefix, Etcd, KeepAlive};
use ops::{for_a_while, percentile, spread, Tally};
use std::{sync::Arc, time::Duration};
use tokio::{sync::Mutex, time::Instant};

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
    /// The fleet measurement.
    pub fleet: FleetSizes,
    /// The shared-lease measurement.
    pub leases: LeaseSizes,
    /// The subset measurement.
    pub subsets: SubsetSizes,
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
            fleet: FleetSizes {
                instances: 10_000,
                changes_watchers: 1000,
                list_watchers: 100,
                changes: 5,
            },
            leases: LeaseSizes {
                instances: 1_000_000,
                leases: 1000,
            },
            subsets: SubsetSizes::TARGET,
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
            fleet: FleetSizes {
                instances: 1_000,
                changes_watchers: 100,
                list_watchers: 20,
                changes: 3,
            },
            leases: LeaseSizes {
                instances: 20_000,
                leases: 100,
            },
            subsets: SubsetSizes::TARGET,
        }
    }
}

pub(super) fn name(raw: &str) -> Result<ServiceName, String> {
    raw.parse().map_err(|e| format!("{e}"))
}

pub(super) fn id(n: usize) -> InstanceId {
    // Always valid: "i" followed by digits.
    InstanceId::new(&format!("i{n}")).unwrap_or_else(|_| unreachable!("i<digits> is a valid id"))
}

/// Measures the registry binary and etcd on the same operations, `runs`
/// times, each run on a fresh registry and a fresh etcd.
pub async fn run(
    registry_binary: &std::path::Path,
    sizes: Sizes,
    runs: usize,
) -> Result<RegistryResults, String> {
    let mut results = RegistryResults {
        runs,
        ..RegistryResults::default()
    };
    for run in 0..runs {
        eprintln!("registry against etcd, run {}", run + 1);
        once(registry_binary, sizes, &mut results).await?;
        // Fresh processes of its own: memory is the whole process's.
        let failed = leases::run(registry_binary, sizes.leases, &mut results.leases).await?;
        results.failed.extend(failed);
        let failed = subsets::run(registry_binary, sizes.subsets, &mut results.subsets).await?;
        results.failed.extend(failed);
    }
    Ok(results)
}

async fn once(
    registry_binary: &std::path::Path,
    sizes: Sizes,
    results: &mut RegistryResults,
) -> Result<(), String> {
    let (registry, client) = start_registry(registry_binary)?;
    let client = Arc::new(client);
    let etcd = Etcd::start().await?;
    let registration = Registration {
        ttl: Duration::from_secs(3600),
        ..Registration::new(Address::new("http://127.0.0.1:9000").map_err(|e| e.to_string())?)
    };
    let subjects = Subjects {
        client,
        registry: &registry,
        etcd: &etcd,
        registration,
        value: vec![b'x'; 100], // about the size of a registration record
        sizes,
    };
    heartbeats(&subjects, results).await?;
    resolves(&subjects, results).await?;
    watchers::fan_out(&subjects, results).await?;
    let fleet = fleet::Fleet {
        client: &subjects.client,
        registry: subjects.registry,
        registration: &subjects.registration,
        etcd: subjects.etcd,
    };
    fleet::measure(&fleet, sizes.fleet, &mut results.fleet, &mut results.failed).await?;
    memory(&subjects, results).await
}

/// What every measurement works on: both systems, the clients, and what
/// is stored.
pub(super) struct Subjects<'a> {
    /// The registry's client.
    pub client: Arc<RegistryClient>,
    /// The registry process.
    pub registry: &'a Service,
    /// etcd, with both its clients.
    pub etcd: &'a Etcd,
    /// What the registry stores per instance.
    pub registration: Registration,
    /// What etcd stores per key.
    pub value: Vec<u8>,
    /// How much of everything.
    pub sizes: Sizes,
}

impl<'a> Subjects<'a> {
    /// What every step works with: the registry's client, etcd, what each
    /// side stores per instance, and the sizes.
    fn parts(
        &self,
    ) -> (
        &Arc<RegistryClient>,
        &'a Etcd,
        &Registration,
        &Vec<u8>,
        Sizes,
    ) {
        (
            &self.client,
            self.etcd,
            &self.registration,
            &self.value,
            self.sizes,
        )
    }
}

async fn heartbeats(subjects: &Subjects<'_>, results: &mut RegistryResults) -> Result<(), String> {
    let (client, etcd, registration, _, sizes) = subjects.parts();
    let hb = name("hb")?;
    let n = sizes.heartbeat_instances;
    let registered = register_many(client, &hb, n, registration).await;
    results.check("register heartbeat instances", registered);
    let beats = {
        let (client, hb) = (Arc::clone(client), hb.clone());
        for_a_while(64, sizes.heartbeat_for, move |i| {
            let (client, hb) = (Arc::clone(&client), hb.clone());
            async move { client.heartbeat(&hb, &id(i % n)).await.is_ok() }
        })
        .await
    };
    results.check("registry heartbeats", beats);
    let mut leases = Vec::with_capacity(n);
    for _ in 0..n {
        leases.push(etcd.gateway.grant(3600).await.map_err(|e| e.to_string())?);
    }
    let leases = Arc::new(leases);
    let gateway = {
        let (gateway, leases) = (Arc::clone(&etcd.gateway), Arc::clone(&leases));
        for_a_while(64, sizes.heartbeat_for, move |i| {
            let (gateway, leases) = (Arc::clone(&gateway), Arc::clone(&leases));
            async move {
                gateway
                    .keep_alive(leases[i % leases.len()])
                    .await
                    .unwrap_or(false)
            }
        })
        .await
    };
    results.check("etcd gateway keep-alives", gateway);
    // One stream per lease, opened before timing; worker w renews leases
    // w, w + 64, ... so no two workers share a stream.
    let mut streams = Vec::with_capacity(n);
    for &lease in leases.iter() {
        streams.push(Mutex::new(KeepAlive::open(&etcd.grpc, lease).await?));
    }
    let streams = Arc::new(streams);
    let grpc = {
        let streams = Arc::clone(&streams);
        for_a_while(64, sizes.heartbeat_for, move |i| {
            let streams = Arc::clone(&streams);
            async move { streams[i % streams.len()].lock().await.renew().await }
        })
        .await
    };
    results.check("etcd gRPC keep-alives", grpc);
    results.record(
        format!("heartbeats/s ({n} instances, 64 in flight; etcd: lease keep-alive)"),
        "/s",
        true,
        [Some(beats.rate()), Some(gateway.rate()), Some(grpc.rate())],
    );
    Ok(())
}

async fn resolves(subjects: &Subjects<'_>, results: &mut RegistryResults) -> Result<(), String> {
    let (client, etcd, registration, value, sizes) = subjects.parts();
    let bulk = name("bulk")?;
    let m = sizes.resolve_instances;
    results.check(
        "register bulk instances",
        register_many(client, &bulk, m, registration).await,
    );
    let put = {
        let (gateway, value) = (Arc::clone(&etcd.gateway), value.to_vec());
        spread(64, m, move |i| {
            let (gateway, value) = (Arc::clone(&gateway), value.clone());
            async move {
                gateway
                    .put(&format!("/bench/bulk/i{i}"), &value, 0)
                    .await
                    .is_ok()
            }
        })
        .await
    };
    results.check("etcd bulk puts", put);
    let (mut registry_times, mut gateway_times, mut grpc_times) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut wrong = 0;
    for _ in 0..30 {
        let started = Instant::now();
        let listed = client.resolve(&bulk).await.map_or(0, |a| a.instances.len());
        registry_times.push(started.elapsed());
        let started = Instant::now();
        let ranged = etcd
            .gateway
            .range_prefix("/bench/bulk/")
            .await
            .map_or(0, |(_, kvs)| kvs.len());
        gateway_times.push(started.elapsed());
        let started = Instant::now();
        let got = range_prefix(&etcd.grpc, "/bench/bulk/").await.unwrap_or(0);
        grpc_times.push(started.elapsed());
        wrong += usize::from(listed != m) + usize::from(ranged != m) + usize::from(got != m);
    }
    if wrong > 0 {
        results.failed.push(format!(
            "{wrong} of 90 resolves/ranges did not return all {m} entries"
        ));
    }
    results.record(
        format!("resolve {m} instances, p50 (etcd: range over {m} keys)"),
        "ms",
        false,
        [
            Some(percentile(registry_times, 0.5)),
            Some(percentile(gateway_times, 0.5)),
            Some(percentile(grpc_times, 0.5)),
        ],
    );
    Ok(())
}

/// Resident memory added per instance actually stored.
async fn memory(subjects: &Subjects<'_>, results: &mut RegistryResults) -> Result<(), String> {
    let (client, etcd, registration, value, sizes) = subjects.parts();
    let k = sizes.memory_instances;
    let registry_pid = subjects.registry.pid();
    let before = rss_kib(registry_pid).unwrap_or(0);
    let mem = name("mem")?;
    results.check(
        "register memory instances",
        register_many(client, &mem, k, registration).await,
    );
    let stored = client.resolve(&mem).await.map_or(0, |a| a.instances.len());
    let registry_bytes = rss_kib(registry_pid).unwrap_or(0).saturating_sub(before) as f64 * 1024.0
        / stored.max(1) as f64;
    let before = rss_kib(etcd.pid()).unwrap_or(0);
    let put = {
        let (gateway, value) = (Arc::clone(&etcd.gateway), value.to_vec());
        spread(64, k, move |i| {
            let (gateway, value) = (Arc::clone(&gateway), value.clone());
            async move {
                match gateway.grant(3600).await {
                    Ok(lease) => gateway
                        .put(&format!("/bench/mem/i{i}"), &value, lease)
                        .await
                        .is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await
    };
    results.check("etcd memory puts", put);
    let kept = match count_prefix(&etcd.grpc, "/bench/mem/").await {
        Ok(kept) => kept,
        Err(e) => {
            results
                .failed
                .push(format!("memory: cannot count etcd's keys: {e}"));
            0
        }
    };
    let etcd_bytes = rss_kib(etcd.pid()).unwrap_or(0).saturating_sub(before) as f64 * 1024.0
        / kept.max(1) as f64;
    if stored != k || kept != k {
        results.failed.push(format!(
            "memory: {stored} instances stored in the registry and {kept} in etcd, of {k}"
        ));
    }
    results.record(
        format!("memory per instance at {k} instances (etcd: key + lease)"),
        "bytes",
        false,
        [Some(registry_bytes), Some(etcd_bytes), None],
    );
    Ok(())
}

/// Registers `count` instances `i0..` of `service` through the registry, 64 at a time.
pub(super) async fn register_many(
    client: &RegistryClient,
    service: &ServiceName,
    count: usize,
    registration: &Registration,
) -> Tally {
    let (client, service, registration) = (
        Arc::new(client.clone()),
        service.clone(),
        registration.clone(),
    );
    spread(64, count, move |i| {
        let (client, service, registration) =
            (Arc::clone(&client), service.clone(), registration.clone());
        async move {
            client
                .register(&service, &id(i), &registration)
                .await
                .is_ok()
        }
    })
    .await
}

/// A registry process from `binary` on a free port, and a client of it
/// with generous timeouts: a thousand watchers connect at once on a small
/// machine.
pub(super) fn start_registry(
    binary: &std::path::Path,
) -> Result<(Service, RegistryClient), String> {
    let registry = Service::start_with_log(
        binary,
        // Capacity is measured here, not the limits that guard it.
        &["--listen", "127.0.0.1:0", "--max-instances", "10000000"],
        "warn,beacon_registry::server=info",
    )?;
    let config = RegistryClientConfig {
        request_timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(10),
        ..RegistryClientConfig::default()
    };
    let client =
        RegistryClient::new([registry.url.as_str()], None, config).map_err(|e| e.to_string())?;
    Ok((registry, client))
}

pub(super) async fn fetch_text(url: &str) -> String {
    let http = beacon::net::http::http_client(Duration::from_secs(1));
    let Ok(request) = http::Request::get(url).body(http_body_util::Full::new(bytes::Bytes::new()))
    else {
        return String::new();
    };
    match http.request(request).await {
        Ok(response) => beacon::net::http::read_body(response.into_body(), 1 << 24)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}
