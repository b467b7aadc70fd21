//! Each service's recent changes, so a watcher gets what changed after its
//! index instead of the whole list.
//!
//! The log keeps the last [`KEPT`] changes of a service, each with the
//! index it came with. It is written only under the service's members write
//! lock, in index order, and read under its read lock: a reader sees the
//! members and the log at the same index. `floor` is the index before the
//! oldest change kept: the changes after any index at or above it are all
//! here; a watcher further behind (or one whose index this registry never
//! handed out, as after a restart) gets a snapshot instead.

use super::member::{Member, Stored};
use beacon_wire::{Change, InstanceId, ServiceName};
use std::{collections::VecDeque, sync::Arc};

/// How many changes of one service are kept: about a quarter of an hour of
/// a change a second, and a few megabytes at most for a service of 10,000
/// instances.
pub(super) const KEPT: usize = 1024;

/// A service's recent changes.
#[derive(Debug)]
pub(super) struct ChangeLog {
    /// The changes after this index are all in `entries`.
    floor: u64,
    /// `(index, change)`, oldest first; several changes may share an index
    /// (a batch of expiries), and an index may have none (a backing store's
    /// change to the service as a whole).
    entries: VecDeque<(u64, Logged)>,
}

/// A change as kept: a put shares the member's registration rather than
/// copying the instance, so a service's log costs little beside its
/// members (a million logged registrations would otherwise be a million
/// copies of an instance).
#[derive(Debug, Clone)]
pub(super) enum Logged {
    /// `id` joined or changed, with this registration.
    Put {
        id: InstanceId,
        stored: Arc<Stored>,
        /// Its lease's remaining time as of the change.
        expires_in_ms: u64,
    },
    /// `id` left.
    Delete(InstanceId),
}

impl Logged {
    /// `member`, registered as `id`, joined or changed.
    pub(super) fn put(id: &InstanceId, member: &Member, expires_in_ms: u64) -> Self {
        Self::Put {
            id: id.clone(),
            stored: Arc::clone(member.stored()),
            expires_in_ms,
        }
    }

    /// The change as the wire shows it.
    fn to_change(&self, service: &ServiceName) -> Change {
        match self {
            Self::Put {
                id,
                stored,
                expires_in_ms,
            } => Change::put(stored.to_instance(service, id, *expires_in_ms)),
            Self::Delete(id) => Change::delete(id.clone()),
        }
    }
}

/// What a reader gets from the log.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Since {
    /// Every change after the index asked for, in order.
    Changes(Vec<Change>),
    /// The index asked for is not covered: start again from a snapshot.
    Snapshot,
}

impl ChangeLog {
    /// An empty log of a service that, at `index`, had no members.
    pub(super) fn starting_at(index: u64) -> Self {
        Self {
            floor: index,
            entries: VecDeque::new(),
        }
    }

    /// Records `changes`, made at `index`, dropping the oldest past
    /// [`KEPT`].
    pub(super) fn record(&mut self, index: u64, changes: impl IntoIterator<Item = Logged>) {
        for change in changes {
            if self.entries.len() == KEPT {
                if let Some((dropped, _)) = self.entries.pop_front() {
                    self.floor = self.floor.max(dropped);
                }
            }
            self.entries.push_back((index, change));
        }
    }

    /// The changes after `after`, for `service` now at `current`.
    pub(super) fn since(&self, after: u64, current: u64, service: &ServiceName) -> Since {
        if after == 0 || after < self.floor || after > current {
            return Since::Snapshot;
        }
        // Entries are in index order: skip those at or before `after`.
        let start = self.entries.partition_point(|(index, _)| *index <= after);
        Since::Changes(
            self.entries
                .range(start..)
                .map(|(_, change)| change.to_change(service))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delete(id: &str) -> Logged {
        Logged::Delete(id.parse().expect("id"))
    }

    fn deleted(id: &str) -> Change {
        Change::delete(id.parse().expect("id"))
    }

    fn service() -> ServiceName {
        "s".parse().expect("name")
    }

    #[test]
    fn changes_after_an_index_are_those_recorded_later_in_order() {
        let mut log = ChangeLog::starting_at(100);
        log.record(101, [delete("a")]);
        log.record(102, [delete("b"), delete("c")]);
        log.record(105, []);
        let s = service();
        assert_eq!(
            log.since(100, 105, &s),
            Since::Changes(vec![deleted("a"), deleted("b"), deleted("c")])
        );
        assert_eq!(
            log.since(101, 105, &s),
            Since::Changes(vec![deleted("b"), deleted("c")])
        );
        assert_eq!(log.since(102, 105, &s), Since::Changes(vec![]));
        assert_eq!(log.since(105, 105, &s), Since::Changes(vec![]));
    }

    #[test]
    fn zero_an_index_below_the_floor_or_past_the_present_gets_a_snapshot() {
        let mut log = ChangeLog::starting_at(100);
        log.record(101, [delete("a")]);
        let s = service();
        assert_eq!(log.since(0, 101, &s), Since::Snapshot);
        assert_eq!(
            log.since(99, 101, &s),
            Since::Snapshot,
            "before the log began"
        );
        assert_eq!(
            log.since(102, 101, &s),
            Since::Snapshot,
            "not one handed out here"
        );
    }

    #[test]
    fn the_oldest_changes_go_past_the_limit_and_raise_the_floor() {
        let mut log = ChangeLog::starting_at(0);
        for i in 1..=(KEPT as u64 + 10) {
            log.record(i, [delete("a")]);
        }
        let s = service();
        assert_eq!(log.since(5, KEPT as u64 + 10, &s), Since::Snapshot);
        match log.since(10, KEPT as u64 + 10, &s) {
            Since::Changes(changes) => assert_eq!(changes.len(), KEPT),
            Since::Snapshot => panic!("index 10 is still covered"),
        }
    }
}
