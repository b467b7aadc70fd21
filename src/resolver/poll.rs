//! The long poll that keeps one view fresh: a blocking query to the
//! registry at a time, each answer reconciled into one map of tracked
//! endpoints, and the endpoints in use published to the view.
//!
//! When no registry answers, the view keeps its last-known instances
//! (stale-if-error), reports `registry_reachable = false` and retries with
//! capped backoff. The first answer after an outage — or any answer whose
//! index went back, the mark of a registry that restarted — may come from a
//! registry that lost its state; instances missing from it are kept for one
//! lease length, long enough for their leases to register them again, rather
//! than dropped at once.

use super::{
    reconcile::{reconcile, Change, Standing},
    recovery,
    view::ServiceView,
    ResolverConfig, ResolverShared,
};
use crate::endpoint::Endpoint;
use crate::events::EventKind;
use crate::health::HealthChecker;
use crate::net::backoff::Backoff;
use crate::registry_client::RegistryClient;
use crate::wire::{Address, Instance, ServiceInstances, WatchQuery, ZONE};
use std::{
    collections::HashMap,
    sync::{Arc, Weak},
    time::Duration,
};
use tokio::time::Instant;

/// An endpoint the view knows about, and where it stands.
struct Tracked {
    endpoint: Arc<Endpoint>,
    standing: Standing,
}

/// The background long poll of one view, with the bookkeeping only it
/// touches.
pub(super) struct Poller {
    view: Weak<ServiceView>,
    registry: RegistryClient,
    config: ResolverConfig,
    health: Option<Arc<HealthChecker>>,
    /// Every address the view knows: in use (listed, or kept after an
    /// outage) or retired with its breaker kept.
    tracked: HashMap<Address, Tracked>,
}

impl Poller {
    pub(super) fn new(view: &Arc<ServiceView>, resolver: &ResolverShared) -> Self {
        Self {
            view: Arc::downgrade(view),
            registry: resolver.registry.clone(),
            config: resolver.config.clone(),
            health: resolver.health.clone(),
            tracked: HashMap::new(),
        }
    }

    /// Polls until the view is dropped.
    pub(super) async fn run(mut self) {
        let mut index: Option<u64> = None;
        let mut after_outage = false;
        let mut backoff = Backoff::new(self.config.retry_base, self.config.retry_cap);
        loop {
            let Some(service) = self.view.upgrade().map(|v| v.service().clone()) else {
                return;
            };
            let result = match index {
                None => self.registry.resolve(&service).await,
                Some(index) => {
                    let wait = self.next_wait();
                    self.registry
                        .watch(&service, WatchQuery { index, wait })
                        .await
                }
            };
            let Some(view) = self.view.upgrade() else {
                return;
            };
            match result {
                Ok(answer) => {
                    view.set_reachable(true, None);
                    // An index going back means the registry lost its state
                    // (it restarted faster than we could notice it was gone).
                    let forgot = index.is_some_and(|old| answer.index < old);
                    index = Some(answer.index);
                    self.apply(&view, answer, after_outage || forgot);
                    view.mark_synced();
                    after_outage = false;
                    backoff.reset();
                }
                Err(error) => {
                    view.set_reachable(false, Some(error.to_string()));
                    index = None;
                    after_outage = true;
                    drop(view);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// The blocking query's wait: the configured one, or less if a stale
    /// endpoint is due to go sooner.
    fn next_wait(&self) -> Duration {
        let now = Instant::now();
        self.tracked
            .values()
            .filter_map(|t| match t.standing {
                Standing::Stale { until } => {
                    Some(until.saturating_duration_since(now) + Duration::from_millis(1))
                }
                _ => None,
            })
            .fold(self.config.watch_wait, Duration::min)
    }

    /// Applies one registry answer to the view.
    fn apply(&mut self, view: &ServiceView, answer: ServiceInstances, after_outage: bool) {
        let now = Instant::now();
        let changes = reconcile(
            &self.tracked,
            |t| t.standing,
            &answer.instances,
            after_outage,
            self.config.breaker.max_open_for,
            now,
        );
        for change in changes {
            match change {
                Change::Add(instance) => self.add(view, &instance),
                Change::Refresh(instance) => {
                    if let Some(tracked) = self.tracked.get_mut(&instance.address) {
                        tracked
                            .endpoint
                            .refresh(&instance.id, instance.registered_at);
                        tracked.standing = listed(&instance);
                    }
                }
                Change::KeepStale { address, until } => {
                    if let Some(tracked) = self.tracked.get_mut(&address) {
                        tracked.standing = Standing::Stale { until };
                    }
                }
                Change::Retire { address, until } => {
                    if let Some(tracked) = self.tracked.get_mut(&address) {
                        let id = tracked.endpoint.id();
                        view.sink().emit(EventKind::InstanceRemoved {
                            id,
                            address: address.clone(),
                        });
                        tracked.standing = Standing::Retired { until };
                    }
                }
                Change::Forget(address) => {
                    self.tracked.remove(&address);
                }
            }
        }
        let mut next: Vec<Arc<Endpoint>> = self
            .tracked
            .values()
            .filter(|t| t.standing.in_use())
            .map(|t| Arc::clone(&t.endpoint))
            .collect();
        next.sort_by_key(|e| e.id());
        let current = view.endpoints();
        let changed = next.len() != current.len()
            || next
                .iter()
                .zip(current.iter())
                .any(|(a, b)| !Arc::ptr_eq(a, b));
        if changed {
            view.replace(next);
        }
    }

    /// Puts a listed instance in use: its retired endpoint if the address
    /// has one (breaker and record included), or a new one with its own
    /// recovery task.
    fn add(&mut self, view: &ServiceView, instance: &Instance) {
        let endpoint = match self.tracked.remove(&instance.address) {
            Some(retired) => retired.endpoint,
            None => recovery::new_endpoint(
                &instance.id,
                &instance.address,
                instance.metadata.get(ZONE).map(String::as_str),
                &self.config,
                view.sink(),
                self.health.clone(),
            ),
        };
        view.sink().emit(EventKind::InstanceAdded {
            id: instance.id.clone(),
            address: instance.address.clone(),
        });
        endpoint.refresh(&instance.id, instance.registered_at);
        self.tracked.insert(
            instance.address.clone(),
            Tracked {
                endpoint,
                standing: listed(instance),
            },
        );
    }
}

fn listed(instance: &Instance) -> Standing {
    Standing::Listed {
        ttl: Duration::from_millis(instance.ttl_ms),
    }
}
