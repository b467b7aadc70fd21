//! Bringing a view in line with a registry answer: a pure function from
//! what the view tracks and what the registry lists to a list of changes,
//! in one pass over each (O(n + m)), so every rule is unit-tested without
//! I/O and the poll task only applies the result.

use crate::wire::{Address, Instance};
use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};
use tokio::time::Instant;

/// Where an address the view knows about stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Listed by the registry's last answer, with its lease length.
    Listed {
        /// How long its lease lasts: the grace it gets after an outage.
        ttl: Duration,
    },
    /// No longer listed, but kept in use until `until`: the registry may have
    /// lost its state, and the instance's lease will register it again.
    Stale {
        /// When to stop using it unless it is listed again.
        until: Instant,
    },
    /// Out of use; its breaker and record are kept until `until`, so an
    /// instance that registers again at the same address comes back with
    /// them (an open breaker then goes straight to HalfOpen).
    Retired {
        /// When to forget it.
        until: Instant,
    },
}

impl Standing {
    /// Whether requests may go to it.
    pub(crate) fn in_use(self) -> bool {
        !matches!(self, Self::Retired { .. })
    }
}

/// One step that brings the view in line with an answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// A listed instance not in use: add it (with its retired endpoint, if
    /// the address has one).
    Add(Instance),
    /// A listed instance in use: record its registration.
    Refresh(Instance),
    /// An instance in use that is no longer listed, kept until `until`.
    KeepStale {
        /// Its address.
        address: Address,
        /// How long it is kept.
        until: Instant,
    },
    /// No longer listed: out of use, its breaker kept until `until`.
    Retire {
        /// Its address.
        address: Address,
        /// When to forget it.
        until: Instant,
    },
    /// A retired address whose time is up.
    Forget(Address),
}

/// The changes that bring `tracked` in line with `listed`. `after_outage`:
/// the answer may come from a registry that lost its state, so instances
/// it no longer lists are kept for one lease length rather than dropped.
/// Retired endpoints are kept for `retire_for`.
pub(crate) fn reconcile<T>(
    tracked: &HashMap<Address, T>,
    standing: impl Fn(&T) -> Standing,
    listed: &[Instance],
    after_outage: bool,
    retire_for: Duration,
    now: Instant,
) -> Vec<Change> {
    let mut changes = Vec::with_capacity(listed.len());
    let mut seen: HashSet<&Address> = HashSet::with_capacity(listed.len());
    for instance in listed {
        seen.insert(&instance.address);
        let in_use = tracked
            .get(&instance.address)
            .is_some_and(|t| standing(t).in_use());
        changes.push(if in_use {
            Change::Refresh(instance.clone())
        } else {
            Change::Add(instance.clone())
        });
    }
    for (address, entry) in tracked {
        if seen.contains(address) {
            continue;
        }
        let retire = Change::Retire {
            address: address.clone(),
            until: now + retire_for,
        };
        match standing(entry) {
            Standing::Listed { ttl } if after_outage && !ttl.is_zero() => {
                changes.push(Change::KeepStale {
                    address: address.clone(),
                    until: now + ttl,
                })
            }
            Standing::Listed { .. } => changes.push(retire),
            Standing::Stale { until } if until > now => {}
            Standing::Stale { .. } => changes.push(retire),
            Standing::Retired { until } if until <= now => {
                changes.push(Change::Forget(address.clone()))
            }
            Standing::Retired { .. } => {}
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Address, Instance};

    const RETIRE_FOR: Duration = Duration::from_secs(60);

    fn address(port: u16) -> Address {
        Address::new(&format!("http://127.0.0.1:{port}")).expect("valid")
    }

    fn instance(port: u16) -> Instance {
        serde_json::from_value(serde_json::json!({
            "service": "ratings",
            "id": format!("r{port}"),
            "address": format!("http://127.0.0.1:{port}"),
            "metadata": {},
            "ttl_ms": 15000,
            "registered_at": 1,
            "expires_in_ms": 15000,
        }))
        .expect("an instance")
    }

    fn listed() -> Standing {
        Standing::Listed {
            ttl: Duration::from_secs(15),
        }
    }

    fn run(
        tracked: &[(u16, Standing)],
        listed: &[u16],
        after_outage: bool,
        now: Instant,
    ) -> Vec<Change> {
        let tracked: HashMap<Address, Standing> =
            tracked.iter().map(|(p, s)| (address(*p), *s)).collect();
        let listed: Vec<Instance> = listed.iter().map(|p| instance(*p)).collect();
        let mut changes = reconcile(&tracked, |s| *s, &listed, after_outage, RETIRE_FOR, now);
        changes.sort_by_key(|c| format!("{c:?}"));
        changes
    }

    #[test]
    fn new_instances_are_added_and_known_ones_refreshed() {
        let now = Instant::now();
        let changes = run(&[(1, listed())], &[1, 2], false, now);
        assert_eq!(
            changes,
            [Change::Add(instance(2)), Change::Refresh(instance(1))]
        );
    }

    #[test]
    fn an_unlisted_instance_is_retired_and_a_returning_one_revived() {
        let now = Instant::now();
        let changes = run(&[(1, listed()), (2, listed())], &[1], false, now);
        assert_eq!(
            changes,
            [
                Change::Refresh(instance(1)),
                Change::Retire {
                    address: address(2),
                    until: now + RETIRE_FOR
                }
            ]
        );
        // Listed again while retired: added back (with its old endpoint).
        let retired = Standing::Retired {
            until: now + RETIRE_FOR,
        };
        assert_eq!(
            run(&[(2, retired)], &[2], false, now),
            [Change::Add(instance(2))]
        );
    }

    #[test]
    fn after_an_outage_unlisted_instances_are_kept_one_lease_length() {
        let now = Instant::now();
        let changes = run(&[(1, listed())], &[], true, now);
        assert_eq!(
            changes,
            [Change::KeepStale {
                address: address(1),
                until: now + Duration::from_secs(15)
            }]
        );
        // Kept while the time lasts, retired after.
        let stale = Standing::Stale {
            until: now + Duration::from_secs(15),
        };
        assert!(run(&[(1, stale)], &[], false, now).is_empty());
        let later = now + Duration::from_secs(15);
        assert!(matches!(
            run(&[(1, stale)], &[], false, later)[..],
            [Change::Retire { .. }]
        ));
        // A stale instance listed again is in use: refreshed, not re-added.
        assert_eq!(
            run(&[(1, stale)], &[1], false, now),
            [Change::Refresh(instance(1))]
        );
    }

    #[test]
    fn retired_endpoints_are_forgotten_when_their_time_is_up() {
        let now = Instant::now();
        let retired = Standing::Retired {
            until: now + RETIRE_FOR,
        };
        assert!(run(&[(3, retired)], &[], false, now).is_empty());
        assert_eq!(
            run(&[(3, retired)], &[], false, now + RETIRE_FOR),
            [Change::Forget(address(3))]
        );
    }
}
