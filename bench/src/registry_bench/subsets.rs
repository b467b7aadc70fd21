//! Subsets: 64 calling processes over 32 instances, each caller using 8 —
//! chosen by the registry (deterministic subsets), by each caller hashing
//! on its own (random rendezvous subsets, as gRPC's A68), or not at all
//! (full mesh, every caller on every instance). Real instances count the
//! callers (connections, as a caller holds one to each instance it uses)
//! and requests they get; real callers (a shared lease and a
//! resolver each, for the registry's subsets) send the requests through
//! Beacon. Then the churn: how many entries of each caller's subset change
//! when one instance joins, and when one caller joins.

use super::{name, start_registry, table::Table};
use axum::{extract::State, http::HeaderMap, routing::get, Router};
use beacon::{
    wire::{Address, InstanceId, Registration, SubsetQuery},
    Balancing, RegistryClient, Resolver, ResolverConfig, ServiceClient, ServiceView, SharedLease,
    Subset,
};
use bytes::Bytes;
use http::Request;
use serde::Serialize;
use std::{
    collections::{BTreeSet, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};
use tokio::time::Instant;

/// Sizes of the subset measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SubsetSizes {
    /// Calling processes.
    pub callers: usize,
    /// Instances of the service.
    pub instances: usize,
    /// Instances per caller (K).
    pub size: usize,
    /// Requests each caller sends.
    pub requests: usize,
}

impl SubsetSizes {
    /// The size the targets are set at (small enough for every run).
    pub const TARGET: Self = Self {
        callers: 64,
        instances: 32,
        size: 8,
        requests: 1000,
    };
}

/// The columns: the registry's subsets, random ones, full mesh.
const SCHEMES: [&str; 3] = ["registry's subsets", "random subsets", "full mesh"];

/// The subset section's figures.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SubsetResults {
    /// Each figure: one column per scheme (the registry's subsets, random ones, full mesh).
    pub table: Table,
    /// The sizes, for the heading.
    pub shape: Option<SubsetSizes>,
}

impl SubsetResults {
    /// A markdown section.
    pub fn markdown(&self) -> String {
        let Some(sizes) = self.shape else {
            return String::new();
        };
        let mut md = format!(
            "\n## A fleet: subsets\n\n{} callers over {} instances, each caller on {} of them: \
             chosen by the registry (`subset={}&client=<lease>`: callers and instances laid on \
             one ring, see the README), by each caller on its own (rendezvous hashing, as \
             random subsetting does), or all of them (full mesh). Every caller is a real \
             resolver and client sending {} requests through Beacon, one at a time, once in \
             turn over its instances (round robin) and once by latency × calls in flight \
             (least loaded, the default, which follows the instances' speed and not only the \
             subset), hedging off; every instance is a real server counting the requests \
             it gets and the callers they came from (its connections: a caller holds one to \
             each instance it uses; counted by caller, not by TCP peer, as a pool may briefly \
             open a second). Max/mean is the busiest \
             instance against the average (1.00 is perfectly even). Churn counts the entries \
             of a caller's subset that change (the most, over all callers). Medians of the \
             runs, range in brackets.\n\n| figure | {} | {} | {} |\n|---|---|---|---|\n",
            sizes.callers,
            sizes.instances,
            sizes.size,
            sizes.size,
            sizes.requests,
            SCHEMES[0],
            SCHEMES[1],
            SCHEMES[2],
        );
        self.table.write_rows(&mut md, SCHEMES.len());
        md
    }
}

/// One instance: a server on a free port counting what it gets.
struct Counted {
    id: InstanceId,
    address: Address,
    requests: AtomicU64,
    /// The callers (by their `x-caller` header) that reached it: what a
    /// subset bounds. Not TCP peers: a pool may open a second connection to
    /// one instance when the first is not yet back in it, which is the
    /// pool's timing, not the subset's spread.
    callers: Mutex<HashSet<usize>>,
}

impl Counted {
    async fn start(n: usize) -> Result<Arc<Self>, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let counted = Arc::new(Self {
            id: InstanceId::new(&format!("ratings-{n:03}")).map_err(|e| e.to_string())?,
            address: Address::new(&format!("http://127.0.0.1:{port}"))
                .map_err(|e| e.to_string())?,
            requests: AtomicU64::new(0),
            callers: Mutex::new(HashSet::new()),
        });
        let app = Router::new()
            .route("/", get(count))
            .with_state(Arc::clone(&counted));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(counted)
    }

    fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.callers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn connections(&self) -> f64 {
        self.callers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len() as f64
    }
}

async fn count(State(counted): State<Arc<Counted>>, headers: HeaderMap) {
    counted.requests.fetch_add(1, Ordering::Relaxed);
    let caller = headers
        .get(CALLER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if let Some(caller) = caller {
        counted
            .callers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(caller);
    }
}

/// The header a caller names itself by.
const CALLER: &str = "x-caller";

/// A caller of the registry's subsets: its lease and its resolver's view.
struct Caller {
    lease: SharedLease,
    view: Arc<ServiceView>,
}

/// Measures the three schemes once at `sizes`; failures are returned, not
/// hidden.
pub async fn run(
    registry_binary: &std::path::Path,
    sizes: SubsetSizes,
    results: &mut SubsetResults,
) -> Result<Vec<String>, String> {
    results.shape = Some(sizes);
    let mut failed = Vec::new();
    let (_registry, client) = start_registry(registry_binary)?;
    // Instances get even numbers, so that one can join between two.
    let mut instances = Vec::new();
    for n in 0..sizes.instances {
        instances.push(Counted::start(n * 2).await?);
    }
    let served = SharedLease::start(client.clone(), Duration::from_secs(60));
    let service = name("ratings")?;
    let mut leases = Vec::new();
    for instance in &instances {
        leases.push(served.register(
            service.clone(),
            instance.id.clone(),
            Registration::new(instance.address.clone()),
        ));
    }
    for lease in &leases {
        lease
            .registered_within(Duration::from_secs(10))
            .await
            .map_err(|e| e.to_string())?;
    }

    let mut callers = Vec::new();
    for _ in 0..sizes.callers {
        callers.push(start_caller(&client, sizes.size)?);
    }
    settle(&client, &callers, sizes.size, &mut failed).await;
    let subsets: Vec<Vec<Arc<ServiceView>>> = vec![
        callers.iter().map(|c| Arc::clone(&c.view)).collect(),
        (0..sizes.callers)
            .map(|c| fixed_view(&instances, &rendezvous(&instances, c, sizes.size)))
            .collect::<Result<_, _>>()?,
        (0..sizes.callers)
            .map(|_| fixed_view(&instances, &(0..instances.len()).collect::<Vec<_>>()))
            .collect::<Result<_, _>>()?,
    ];
    for (column, views) in subsets.into_iter().enumerate() {
        for (balancing, row) in [
            (
                Balancing::RoundRobin,
                "requests per instance, max/mean (round robin)",
            ),
            (
                Balancing::LeastLoaded,
                "requests per instance, max/mean (least loaded)",
            ),
        ] {
            for instance in &instances {
                instance.reset();
            }
            send(&views, balancing, sizes.requests, &mut failed).await;
            let requests: Vec<f64> = instances
                .iter()
                .map(|i| i.requests.load(Ordering::Relaxed) as f64)
                .collect();
            let table = &mut results.table;
            table.record(row, "×", column, max_over_mean(&requests));
            if matches!(balancing, Balancing::RoundRobin) {
                // Connections as round robin leaves them: it uses every
                // instance of a caller's subset, where least loaded may
                // leave one it found slow untouched for a short run.
                let connections: Vec<f64> = instances.iter().map(|i| i.connections()).collect();
                table.record(
                    "connections per instance, max/mean",
                    "×",
                    column,
                    max_over_mean(&connections),
                );
                table.record(
                    "connections per instance, mean",
                    "",
                    column,
                    mean(&connections),
                );
            }
        }
    }

    // Churn when one instance joins: the registry's, then random and full
    // mesh computed the same way over the new list.
    let before: Vec<BTreeSet<String>> = callers.iter().map(|c| ids(&c.view)).collect();
    let joined = Counted::start(sizes.instances | 1).await?; // odd: between two
    let _joined = served.register(
        service.clone(),
        joined.id.clone(),
        Registration::new(joined.address.clone()),
    );
    let mut more = instances.clone();
    more.push(Arc::clone(&joined));
    more.sort_by(|a, b| a.id.cmp(&b.id));
    settle(&client, &callers, sizes.size, &mut failed).await;
    let after: Vec<BTreeSet<String>> = callers.iter().map(|c| ids(&c.view)).collect();
    let random = |list: &[Arc<Counted>], c: usize| -> BTreeSet<String> {
        rendezvous(list, c, sizes.size)
            .into_iter()
            .map(|i| list[i].id.to_string())
            .collect()
    };
    let random_before: Vec<_> = (0..sizes.callers).map(|c| random(&instances, c)).collect();
    let random_after: Vec<_> = (0..sizes.callers).map(|c| random(&more, c)).collect();
    let what = "subset entries changed when one instance joins, most per caller";
    let table = &mut results.table;
    table.record(what, "", 0, most_changed(&before, &after));
    table.record(what, "", 1, most_changed(&random_before, &random_after));
    // Full mesh: everyone adds the newcomer.
    table.record(what, "", 2, 1.0);

    // Churn when one caller joins: random and full mesh never move.
    let before = after;
    callers.push(start_caller(&client, sizes.size)?);
    settle(&client, &callers, sizes.size, &mut failed).await;
    let after: Vec<BTreeSet<String>> = callers.iter().map(|c| ids(&c.view)).collect();
    let what = "subset entries changed when one caller joins, most per caller";
    table.record(what, "", 0, most_changed(&before, &after[..before.len()]));
    table.record(what, "", 1, 0.0);
    table.record(what, "", 2, 0.0);
    Ok(failed)
}

fn start_caller(client: &RegistryClient, size: usize) -> Result<Caller, String> {
    let lease = SharedLease::start(client.clone(), Duration::from_secs(60));
    let config = ResolverConfig {
        subset: Some(Subset::new(size, &lease)),
        health_check: None,
        ..ResolverConfig::default()
    };
    let view = Resolver::new(client.clone(), config).service(&name("ratings")?);
    Ok(Caller { lease, view })
}

/// Waits until every caller's view is exactly the subset the registry
/// would answer its lease now.
async fn settle(
    client: &RegistryClient,
    callers: &[Caller],
    size: usize,
    failed: &mut Vec<String>,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let service = name("ratings").unwrap_or_else(|_| unreachable!("a valid name"));
    let mut last = String::new();
    'poll: while Instant::now() < deadline {
        for caller in callers {
            let Some(lease) = caller.lease.id() else {
                last = "a caller's lease is not granted".into();
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue 'poll;
            };
            let query = SubsetQuery {
                size,
                client: lease,
            };
            let expected: BTreeSet<String> = match client.subset(&service, None, &query).await {
                Ok(answer) => answer
                    .instances
                    .unwrap_or_default()
                    .iter()
                    .map(|i| i.id.to_string())
                    .collect(),
                Err(_) => BTreeSet::new(),
            };
            let seen = ids(&caller.view);
            if expected.is_empty() || seen != expected {
                last = format!(
                    "a caller sees {seen:?}, the registry gives it {expected:?} (registry \
                     reachable: {})",
                    caller.view.snapshot().registry_reachable
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue 'poll;
            }
        }
        return;
    }
    failed.push(format!("subset callers did not settle in 20 s: {last}"));
}

fn ids(view: &ServiceView) -> BTreeSet<String> {
    view.endpoints()
        .iter()
        .map(|e| e.id().to_string())
        .collect()
}

fn fixed_view(instances: &[Arc<Counted>], chosen: &[usize]) -> Result<Arc<ServiceView>, String> {
    let listed: Vec<(InstanceId, Address)> = chosen
        .iter()
        .map(|&i| (instances[i].id.clone(), instances[i].address.clone()))
        .collect();
    Ok(ServiceView::fixed(
        name("ratings")?,
        &listed,
        &ResolverConfig::default(),
    ))
}

/// Each caller's requests, one at a time, all callers at once; no hedging,
/// so that every request counted is one sent.
async fn send(
    views: &[Arc<ServiceView>],
    balancing: Balancing,
    requests: usize,
    failed: &mut Vec<String>,
) {
    let mut tasks = Vec::new();
    for (caller, view) in views.iter().enumerate() {
        let client = ServiceClient::builder_for_view(Arc::clone(view))
            .balancing(balancing)
            .hedging(None)
            .build();
        tasks.push(tokio::spawn(async move {
            let client = client.map_err(|e| e.to_string())?;
            for _ in 0..requests {
                let request = Request::get("/")
                    .header(CALLER, caller)
                    .body(Bytes::new())
                    .map_err(|e| e.to_string())?;
                match client.send(request).await {
                    Ok(answer) if answer.status().is_success() => {}
                    Ok(answer) => return Err(format!("answered {}", answer.status())),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed.push(format!("subset request: {e}")),
            Err(e) => failed.push(format!("subset caller: {e}")),
        }
    }
}

/// Random (rendezvous) subsets: caller `c` takes the `k` instances whose
/// hash with it is highest.
fn rendezvous(instances: &[Arc<Counted>], caller: usize, k: usize) -> Vec<usize> {
    let hash = |id: &str| {
        // FNV-1a over the caller and the id: deterministic across runs.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in caller.to_le_bytes().iter().chain(id.as_bytes()) {
            h = (h ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    let mut order: Vec<usize> = (0..instances.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(hash(instances[i].id.as_str())));
    order.truncate(k);
    order
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn max_over_mean(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max) / mean(values)
}

fn most_changed(before: &[BTreeSet<String>], after: &[BTreeSet<String>]) -> f64 {
    before
        .iter()
        .zip(after)
        .map(|(old, new)| new.difference(old).count())
        .max()
        .unwrap_or(0) as f64
}
