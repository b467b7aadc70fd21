//! A watcher that stays: a stream of changes subscribes to its service's
//! index once and parks on it between lines, instead of subscribing (and
//! taking the service map's write guard) for every line as a blocking
//! read does.

use super::Catalog;
use beacon_wire::ServiceName;
use bytes::Bytes;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One service's index, subscribed to until
/// [`unsubscribe`](Catalog::unsubscribe).
#[derive(Debug)]
pub struct Subscription {
    service: ServiceName,
    index: watch::Receiver<u64>,
}

impl Catalog {
    /// Subscribes to the index of `service` (remembering the service
    /// while subscribed, as a parked blocking read does).
    pub fn subscribe(&self, service: &ServiceName) -> Subscription {
        // Subscribing under the map guard means the entry can't be
        // forgotten between lookup and subscription.
        let entry = self
            .services
            .entry(service.clone())
            .or_insert_with(|| self.new_entry());
        Subscription {
            service: service.clone(),
            index: entry.index.subscribe(),
        }
    }

    /// The next line of a stream: with `after`, once the index is no
    /// longer `after` (or `wait` passes, or `cancel` fires), the changes
    /// since as [`changes_json`](Self::changes_json) makes them; without,
    /// a snapshot at once.
    pub async fn next_changes_json(
        &self,
        subscription: &mut Subscription,
        after: Option<u64>,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> (u64, Bytes) {
        let Some(after) = after else {
            return self.changes_json(&subscription.service, 0);
        };
        self.park(&mut subscription.index, after, wait, cancel)
            .await;
        self.changes_json(&subscription.service, after)
    }

    /// Ends `subscription`, forgetting its service if nothing else holds
    /// it.
    pub fn unsubscribe(&self, subscription: Subscription) {
        let Subscription { service, index } = subscription;
        drop(index);
        self.forget_if_idle(&service);
    }
}
