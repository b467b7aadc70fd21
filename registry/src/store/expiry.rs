//! Lease expiry driven by deadlines.
//!
//! One task sleeps until the earliest deadline in a min-heap, then removes
//! the instances whose lease has run out. No periodic scan: the cost is
//! proportional to the leases that come due, not to how many exist.
//!
//! Heartbeats don't touch the heap. The heap holds, for every live instance,
//! an entry no later than its lease's end; when an entry comes due and the
//! lease was renewed meanwhile, the entry goes back in at the new deadline.
//! So each instance costs one heap operation per TTL, however often it
//! heartbeats.

use super::Clock;
use beacon_wire::{InstanceId, LeaseId, ServiceName};
use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    sync::{Mutex, MutexGuard, PoisonError},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How many due entries are taken off the heap per lock, so that a mass
/// expiry doesn't hold the heap lock (and stall registrations) for long.
const BATCH: usize = 4096;

/// Deadlines waiting to be checked.
#[derive(Debug, Default)]
pub(super) struct ExpiryQueue {
    heap: Mutex<BinaryHeap<Reverse<Due>>>,
    /// Wakes the reaper when a deadline earlier than the one it sleeps
    /// towards is scheduled.
    earlier: Notify,
}

/// "Check `what` at `at_ms`." Ordered by time first.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at_ms: u64,
    what: Expiring,
}

/// What a deadline belongs to.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Expiring {
    /// An instance on a lease of its own.
    Instance(ServiceName, InstanceId),
    /// A shared lease, for all of its instances at once.
    Lease(LeaseId),
}

/// The deadlines that came due, for the caller to check.
#[derive(Debug, Default)]
pub(super) struct DueNow {
    /// Instances on leases of their own, grouped by service.
    pub(super) instances: Vec<(ServiceName, Vec<InstanceId>)>,
    /// Shared leases.
    pub(super) leases: Vec<LeaseId>,
}

impl ExpiryQueue {
    /// Asks for `service`/`id` to be checked at `at_ms` (in [`Clock`] ms).
    pub(super) fn schedule(&self, at_ms: u64, service: ServiceName, id: InstanceId) {
        self.push(at_ms, Expiring::Instance(service, id));
    }

    /// Asks for the shared lease `lease` to be checked at `at_ms`.
    pub(super) fn schedule_lease(&self, at_ms: u64, lease: LeaseId) {
        self.push(at_ms, Expiring::Lease(lease));
    }

    fn push(&self, at_ms: u64, what: Expiring) {
        let mut heap = self.lock();
        let earliest = heap.peek().is_none_or(|Reverse(top)| at_ms < top.at_ms);
        heap.push(Reverse(Due { at_ms, what }));
        drop(heap);
        if earliest {
            self.earlier.notify_one();
        }
    }

    /// Waits until some deadlines are due and returns them (instances
    /// grouped by service; at most a batch at a time), or `None` once
    /// `cancel` fires. The caller checks each and requeues the ones renewed
    /// meanwhile.
    pub(super) async fn next_due(
        &self,
        clock: Clock,
        cancel: &CancellationToken,
    ) -> Option<DueNow> {
        loop {
            let due = self.take_due(clock.now_ms());
            if !due.is_empty() {
                return Some(group(due));
            }
            let next = self.lock().peek().map(|Reverse(due)| due.at_ms);
            let sleep = async {
                match next {
                    Some(at_ms) => tokio::time::sleep_until(clock.instant(at_ms)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = self.earlier.notified() => {}
                _ = sleep => {}
            }
        }
    }

    /// Puts renewed leases back at their new deadlines.
    pub(super) fn requeue(&self, service: &ServiceName, renewed: Vec<(InstanceId, u64)>) {
        let mut heap = self.lock();
        for (id, at_ms) in renewed {
            let what = Expiring::Instance(service.clone(), id);
            heap.push(Reverse(Due { at_ms, what }));
        }
    }

    fn take_due(&self, now: u64) -> Vec<Due> {
        let mut heap = self.lock();
        let mut due = Vec::new();
        while due.len() < BATCH && heap.peek().is_some_and(|Reverse(top)| top.at_ms <= now) {
            if let Some(Reverse(entry)) = heap.pop() {
                due.push(entry);
            }
        }
        due
    }

    /// How many entries wait in the heap (about one per live instance).
    pub(super) fn pending(&self) -> usize {
        self.lock().len()
    }

    /// The heap holds plain data that is valid at every step, so a poisoned
    /// lock is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, BinaryHeap<Reverse<Due>>> {
        self.heap.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Due deadlines sorted into shared leases and instances grouped by
/// service, so each service is locked, and its watchers woken, once per
/// batch rather than once per instance.
fn group(due: Vec<Due>) -> DueNow {
    let mut now = DueNow::default();
    let mut instances = Vec::new();
    for Due { what, .. } in due {
        match what {
            Expiring::Instance(service, id) => instances.push((service, id)),
            Expiring::Lease(lease) => now.leases.push(lease),
        }
    }
    instances.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    now.instances = instances
        .chunk_by(|a, b| a.0 == b.0)
        .map(|group| {
            let ids = group.iter().map(|(_, id)| id.clone()).collect();
            (group[0].0.clone(), ids)
        })
        .collect();
    now
}
