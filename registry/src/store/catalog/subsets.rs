//! Subset reads: each client watching a service with `subset=K` gets its
//! deterministic K of the service's instances ([`crate::subset`]), ranked
//! among the clients (by lease) that asked for a subset of it here.
//!
//! A subset changes when the service does and when the clients do (a
//! client joining or leaving moves everyone's rank), so a subset answer's
//! index is the service's index plus how many times its clients changed:
//! both only rise, so the sum rises whenever either does, and a subset
//! watcher blocked on it wakes for both.

use super::{lock, member::live_instances, read, Catalog, ServiceEntry, StoreError};
use crate::metrics::ParkedWatcher;
use beacon_wire::{LeaseId, ServiceChanges, ServiceName, SubsetQuery, SubsetSize, WatchQuery};
use std::{collections::BTreeSet, sync::Mutex};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The clients of one service's subsets.
#[derive(Debug, Default)]
pub(super) struct SubsetClients {
    /// By lease id: a client's rank is its place here.
    clients: Mutex<BTreeSet<LeaseId>>,
    /// Bumped whenever `clients` changes; see the module doc.
    epoch: watch::Sender<u64>,
}

impl SubsetClients {
    pub(super) fn is_empty(&self) -> bool {
        lock(&self.clients).is_empty()
    }

    /// Adds or removes `client`, waking the subset watchers if that
    /// changed anything.
    fn set(&self, client: &LeaseId, member: bool) {
        let changed = {
            let mut clients = lock(&self.clients);
            if member {
                clients.insert(client.clone())
            } else {
                clients.remove(client)
            }
        };
        if changed {
            self.epoch.send_modify(|epoch| *epoch += 1);
        }
    }
}

impl Catalog {
    /// A changes read of `subset`'s share of `service`: with `query`,
    /// waits until the subset's index (see the module doc) moves past
    /// `query.index`; then answers the client's subset whole (`snapshot`:
    /// K instances are few). The client's lease must be live: it is what
    /// ranks the client, and a client whose lease ends stops counting.
    pub async fn read_subset(
        &self,
        service: &ServiceName,
        query: Option<WatchQuery>,
        subset: &SubsetQuery,
        cancel: &CancellationToken,
    ) -> Result<ServiceChanges, StoreError> {
        self.lease_status(&subset.client)?;
        let (mut index, mut epoch) = {
            // Subscribing under the map guard: the entry can't be
            // forgotten in between (it has a subset client from now on).
            let entry = self
                .services
                .entry(service.clone())
                .or_insert_with(|| self.new_entry());
            entry.subsets.set(&subset.client, true);
            (entry.index.subscribe(), entry.subsets.epoch.subscribe())
        };
        if let Some(query) = query {
            let now = *index.borrow_and_update() + *epoch.borrow_and_update();
            if now == query.index {
                let _parked = ParkedWatcher::new(&self.metrics);
                tokio::select! {
                    _ = index.changed() => {}
                    _ = epoch.changed() => {}
                    _ = tokio::time::sleep(query.wait) => {}
                    _ = cancel.cancelled() => {}
                }
            }
        }
        Ok(self.subset_of(service, subset))
    }

    /// Removes `lease` from the subset clients of every service: it ended.
    pub(super) fn leave_subsets(&self, lease: &LeaseId) {
        for entry in self.services.iter() {
            entry.subsets.set(lease, false);
        }
    }

    /// The subset of `service` that `subset.client` gets now.
    fn subset_of(&self, service: &ServiceName, subset: &SubsetQuery) -> ServiceChanges {
        // The index is read before the clients and the members: an answer
        // may then be newer than its index (its watcher wakes once more
        // for nothing), never older (it would sleep on a stale subset
        // until the next change).
        let (index, clients) = match self.services.get(service) {
            Some(entry) => (
                subset_index(&entry),
                lock(&entry.subsets.clients).iter().cloned().collect(),
            ),
            None => (0, Vec::new()),
        };
        // Ranked among clients whose lease is live (looked up with no
        // service guard held); the others are forgotten.
        let (live, ended): (Vec<LeaseId>, Vec<LeaseId>) = clients
            .into_iter()
            .partition(|client| self.lease_status(client).is_ok());
        if let (false, Some(entry)) = (ended.is_empty(), self.services.get(service)) {
            for client in &ended {
                entry.subsets.set(client, false);
            }
        }
        let rank = live.binary_search(&subset.client).unwrap_or_else(|at| at);
        let now = self.now();
        let all = match self.services.get(service) {
            None => Vec::new(),
            Some(entry) => live_instances(service, &read(&entry.members), now),
        };
        let of = all.len();
        let mut chosen: Vec<usize> =
            crate::subset::subset(of, live.len().max(1), rank, subset.size);
        chosen.sort_unstable();
        let instances = chosen.into_iter().map(|i| all[i].clone()).collect();
        ServiceChanges {
            service: service.clone(),
            index,
            snapshot: true,
            instances: Some(instances),
            changes: Vec::new(),
            subset: Some(SubsetSize {
                size: subset.size as u64,
                of: of as u64,
            }),
        }
    }
}

/// The index of a service's subsets: see the module doc.
fn subset_index(entry: &ServiceEntry) -> u64 {
    *entry.index.borrow() + *entry.subsets.epoch.borrow()
}
