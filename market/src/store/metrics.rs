//! Counts of what the store and its writers did, for `/_metrics`.

use prometheus_client::{metrics::counter::Counter, registry::Registry};

/// Shared counters (clones count together).
#[derive(Debug, Clone, Default)]
pub struct StoreMetrics {
    /// Document versions written (orders' carts included).
    pub versions_written: Counter,
    /// Writes based on an older version that merged cleanly.
    pub merges: Counter,
    /// Writes refused with a conflict (409).
    pub conflicts: Counter,
    /// Compare-and-sets that lost a race and were tried again.
    pub retries: Counter,
    /// Rows whose signature did not verify.
    pub tampered: Counter,
}

impl StoreMetrics {
    /// Registers the counters as `store_*_total`.
    pub fn register(&self, registry: &mut Registry) {
        let store = registry.sub_registry_with_prefix("store");
        for (name, help, counter) in [
            (
                "versions_written",
                "Document versions written",
                &self.versions_written,
            ),
            ("merges", "Stale writes merged three-way", &self.merges),
            (
                "conflicts",
                "Stale writes refused with a conflict",
                &self.conflicts,
            ),
            (
                "retries",
                "Compare-and-set races lost and retried",
                &self.retries,
            ),
            (
                "tampered",
                "Stored rows refused because their signature did not verify",
                &self.tampered,
            ),
        ] {
            store.register(name, help, counter.clone());
        }
    }
}
