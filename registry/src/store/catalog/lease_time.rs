//! Lease time that stands still while the backing store can't take
//! writes: nobody can renew a lease then, so none may run out — as etcd's
//! own leases don't without a quorum, and are extended when a leader is
//! elected.

use super::{read, Catalog, Deadline};
use std::{sync::atomic::Ordering, time::Duration};

impl Catalog {
    /// Lease time now: the clock's, or where it stood when frozen.
    pub(super) fn now(&self) -> u64 {
        self.clock
            .now_ms()
            .min(self.frozen_at.load(Ordering::Acquire))
    }

    /// Stops lease time as of `since` ([`Clock`](crate::store::Clock) milliseconds, no later
    /// than now): the backing store can't be reached, and nobody could
    /// renew a lease since it last answered, so no instance runs out from
    /// then on, and reads show what was live then. Returns whether it was
    /// running.
    pub fn freeze(&self, since: u64) -> bool {
        let at = since.min(self.clock.now_ms());
        self.frozen_at
            .compare_exchange(u64::MAX, at, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Starts lease time again after [`freeze`](Self::freeze), moving every
    /// deadline on by the time it stood still — as etcd extends its leases
    /// when a new leader is elected — so an instance gets its whole TTL to
    /// renew once it can. One that had run out before the freeze stays out.
    /// Returns how long it stood still, if it did.
    pub fn thaw(&self) -> Option<Duration> {
        let frozen_at = self.frozen_at.load(Ordering::Acquire);
        if frozen_at == u64::MAX {
            return None;
        }
        let stood = self.clock.now_ms().saturating_sub(frozen_at);
        for entry in self.services.iter() {
            for member in read(&entry.members).values() {
                if let Deadline::Own(at) = &member.deadline {
                    at.fetch_add(stood, Ordering::AcqRel);
                }
            }
        }
        // A shared deadline once, however many members share it.
        for lease in self.leases.iter() {
            lease.deadline.fetch_add(stood, Ordering::AcqRel);
        }
        // Deadlines first, then time runs: no read in between sees time
        // run past a deadline not yet moved.
        self.frozen_at.store(u64::MAX, Ordering::Release);
        Some(Duration::from_millis(stood))
    }

    /// Whether lease time stands still.
    pub fn is_frozen(&self) -> bool {
        self.frozen_at.load(Ordering::Acquire) != u64::MAX
    }
}
