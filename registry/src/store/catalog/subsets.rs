//! Subset reads: each client watching a service with `subset=K` gets its
//! deterministic K of the service's instances ([`crate::subset`]), ranked
//! among the clients (by lease) that asked for a subset of it here.

use super::{lock, member::live_instances, read, Catalog, StoreError};
use beacon_wire::{LeaseId, ServiceChanges, ServiceName, SubsetQuery, SubsetSize, WatchQuery};
use tokio_util::sync::CancellationToken;

impl Catalog {
    /// A changes read of `subset`'s share of `service`: with `query`,
    /// waits as [`read_changes`](Self::read_changes) does; then answers
    /// the client's subset whole (`snapshot`: K instances are few). The
    /// client's lease must be live: it is what ranks the client, and a
    /// client whose lease ends stops counting.
    pub async fn read_subset(
        &self,
        service: &ServiceName,
        query: Option<WatchQuery>,
        subset: &SubsetQuery,
        cancel: &CancellationToken,
    ) -> Result<ServiceChanges, StoreError> {
        self.lease_status(&subset.client)?;
        self.join_subset(service, &subset.client);
        if let Some(query) = query {
            self.wait_past(service, query.index, query.wait, cancel)
                .await;
        }
        Ok(self.subset_of(service, subset))
    }

    /// Counts `client` among the subset clients of `service`.
    fn join_subset(&self, service: &ServiceName, client: &LeaseId) {
        let entry = self
            .services
            .entry(service.clone())
            .or_insert_with(|| self.new_entry());
        lock(&entry.subset_clients).insert(client.clone());
    }

    /// The subset of `service` that `subset.client` gets now.
    fn subset_of(&self, service: &ServiceName, subset: &SubsetQuery) -> ServiceChanges {
        let clients: Vec<LeaseId> = match self.services.get(service) {
            Some(entry) => lock(&entry.subset_clients).iter().cloned().collect(),
            None => Vec::new(),
        };
        // Ranked among clients whose lease is live (looked up with no
        // service guard held); the others are forgotten.
        let (live, ended): (Vec<LeaseId>, Vec<LeaseId>) = clients
            .into_iter()
            .partition(|client| self.lease_status(client).is_ok());
        if let (false, Some(entry)) = (ended.is_empty(), self.services.get(service)) {
            let mut clients = lock(&entry.subset_clients);
            for client in &ended {
                clients.remove(client);
            }
        }
        let rank = live.binary_search(&subset.client).unwrap_or_else(|at| at);
        let now = self.now();
        let (index, all) = match self.services.get(service) {
            None => (0, Vec::new()),
            Some(entry) => {
                let members = read(&entry.members);
                (
                    *entry.index.borrow(),
                    live_instances(service, &members, now),
                )
            }
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
