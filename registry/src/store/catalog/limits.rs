//! How many instances a registry takes (`--max-instances`,
//! `--max-per-service`): a new instance past either is refused with 429
//! `too_many_instances`, so that a flood of registrations can't take the
//! registry's memory. A registration that replaces one is always taken.
//!
//! The registry-wide count is kept as the sum of what each service last
//! reported to [`Catalog::bump`](super::Catalog), so checking it costs
//! O(1), not a walk of every member.

use super::{read, Catalog};
use beacon_wire::{InstanceId, ServiceName};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The limits in force, and the count they are checked against.
#[derive(Debug)]
pub(super) struct Limits {
    max_instances: AtomicUsize,
    max_per_service: AtomicUsize,
    /// Members of every service, as of each one's last change.
    total: AtomicUsize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_instances: AtomicUsize::new(usize::MAX),
            max_per_service: AtomicUsize::new(usize::MAX),
            total: AtomicUsize::new(0),
        }
    }
}

/// A new instance past a limit: which one, for the caller's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} holds {limit} instances, its limit; no new one is taken")]
pub struct Full {
    /// `the registry`, or `service <name>`.
    pub what: String,
    /// The limit.
    pub limit: usize,
}

impl Limits {
    /// A service's member count went from `before` to `now`.
    pub(super) fn recount(&self, before: usize, now: usize) {
        if now >= before {
            self.total.fetch_add(now - before, Ordering::Relaxed);
        } else {
            self.total.fetch_sub(before - now, Ordering::Relaxed);
        }
    }
}

impl Catalog {
    /// Sets the limits: at most `instances` in the registry and
    /// `per_service` in any one service.
    pub fn set_limits(&self, instances: usize, per_service: usize) {
        self.limits
            .max_instances
            .store(instances, Ordering::Relaxed);
        self.limits
            .max_per_service
            .store(per_service, Ordering::Relaxed);
    }

    /// Whether `id` may be registered in `service`: always if it is there
    /// already (a replacement); else only below both limits. Checked
    /// before the write, so registrations racing at the limit may pass it
    /// by as many as race.
    pub fn admits(&self, service: &ServiceName, id: &InstanceId) -> Result<(), Full> {
        let per_service = self.limits.max_per_service.load(Ordering::Relaxed);
        if let Some(entry) = self.services.get(service) {
            let members = read(&entry.members);
            if members.contains_key(id) {
                return Ok(());
            }
            if members.len() >= per_service {
                return Err(Full {
                    what: format!("service {service}"),
                    limit: per_service,
                });
            }
        }
        let limit = self.limits.max_instances.load(Ordering::Relaxed);
        if self.limits.total.load(Ordering::Relaxed) >= limit {
            return Err(Full {
                what: "the registry".into(),
                limit,
            });
        }
        Ok(())
    }
}
