//! Subsets through the library: callers each holding a shared lease and a
//! resolver with `Subset { size: K }` see K instances each, the registry's
//! deterministic choice (together they cover every instance evenly), and
//! their views move when another caller joins.

mod support;

use beacon::{
    wire::{Address, Registration},
    RegistryClient, Resolver, ResolverConfig, ServiceView, SharedLease, Subset,
};
use std::{collections::BTreeSet, sync::Arc, time::Duration};
use support::{eventually, TestRegistry};

const PATIENCE: Duration = Duration::from_secs(15);

/// One calling process: its lease, and a resolver watching subsets.
struct Caller {
    _lease: SharedLease,
    view: Arc<ServiceView>,
}

impl Caller {
    fn start(registry: &str, size: usize) -> Self {
        let client = RegistryClient::from_list(registry, None).expect("client");
        let lease = SharedLease::start(client.clone(), Duration::from_secs(15));
        let config = ResolverConfig {
            subset: Some(Subset::new(size, &lease)),
            watch_wait: Duration::from_secs(5),
            ..ResolverConfig::default()
        };
        let view = Resolver::new(client, config).service(&"ratings".parse().expect("name"));
        Self {
            _lease: lease,
            view,
        }
    }

    fn ids(&self) -> BTreeSet<String> {
        self.view
            .endpoints()
            .iter()
            .map(|e| e.id().to_string())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_see_their_k_instances_and_move_when_another_joins() {
    let registry = TestRegistry::start(None).await;
    let client = RegistryClient::from_list(&registry.url, None).expect("client");
    let served = SharedLease::start(client, Duration::from_secs(15));
    let mut instances = Vec::new();
    for n in 0..6u16 {
        let address = Address::new(&format!("http://127.0.0.1:{}", 9100 + n)).expect("address");
        let id = format!("ratings-{n}").parse().expect("id");
        instances.push(served.register(
            "ratings".parse().expect("name"),
            id,
            Registration::new(address),
        ));
    }
    for instance in &instances {
        instance
            .registered_within(PATIENCE)
            .await
            .expect("registered");
    }

    // Two callers, K = 3 of 6: disjoint halves that cover everything.
    let a = Caller::start(&registry.url, 3);
    let b = Caller::start(&registry.url, 3);
    let (seen_a, seen_b) = eventually(PATIENCE, "two disjoint subsets of 3", || async {
        let (ids_a, ids_b) = (a.ids(), b.ids());
        (ids_a.len() == 3 && ids_b.len() == 3 && ids_a.is_disjoint(&ids_b))
            .then_some((ids_a, ids_b))
    })
    .await;
    assert_eq!(seen_a.union(&seen_b).count(), 6);

    // A third caller joins: ranks shift (starts 0, 3 become 0, 2, 4), so
    // every two subsets now share one instance — which a and b can only
    // show if their blocked reads woke for the join, as no instance
    // changed.
    let c = Caller::start(&registry.url, 3);
    eventually(PATIENCE, "three subsets, each two sharing one", || async {
        let all = [a.ids(), b.ids(), c.ids()];
        let sizes = all.iter().all(|ids| ids.len() == 3);
        let overlaps = [(0, 1), (1, 2), (0, 2)]
            .iter()
            .all(|&(x, y)| all[x].intersection(&all[y]).count() == 1);
        (sizes && overlaps).then_some(())
    })
    .await;
    assert!(a.ids() != seen_a || b.ids() != seen_b);
}
