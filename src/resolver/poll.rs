//! The watch that keeps one view fresh: each answer of the registry
//! reconciled into one map of tracked endpoints, and the endpoints in use
//! published to the view.
//!
//! The answers are the registry's changes feed, read as one long answer (a
//! line per change, on one request): only what changed after the index the
//! view is at comes over the wire (a snapshot at first, or when the view
//! fell behind what the registry keeps), applied to the list the poller
//! holds. A stream that ends is opened again from the same index. A
//! registry without the feed (an older one) is long-polled for its whole
//! list instead.
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
use crate::registry_client::{ChangesStream, RegistryClient, RegistryError};
use crate::wire::{Address, Instance, ServiceName, StreamQuery, SubsetQuery, WatchQuery, ZONE};
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
    /// The registry's list as of the last answer, ordered by id: what the
    /// next changes apply to.
    listed: Vec<Instance>,
    /// The registry answered the changes feed with a 4xx: it predates it,
    /// so the whole list is long-polled instead.
    lists_only: bool,
    /// The stream of changes being read, once open.
    stream: Option<ChangesStream>,
}

impl Poller {
    pub(super) fn new(view: &Arc<ServiceView>, resolver: &ResolverShared) -> Self {
        Self {
            view: Arc::downgrade(view),
            registry: resolver.registry.clone(),
            config: resolver.config.clone(),
            health: resolver.health.clone(),
            tracked: HashMap::new(),
            listed: Vec::new(),
            lists_only: false,
            stream: None,
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
            let result = self.next_list(&service, index).await;
            let Some(view) = self.view.upgrade() else {
                return;
            };
            match result {
                Ok(at) => {
                    view.set_reachable(true, None);
                    // An index going back means the registry lost its state
                    // (it restarted faster than we could notice it was gone).
                    let forgot = index.is_some_and(|old| at < old);
                    index = Some(at);
                    self.apply(&view, after_outage || forgot);
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

    /// Brings [`listed`](Self::listed) to the registry's present (at once
    /// with no `index`; else once it moves past `index`, or after the
    /// wait) and returns its index.
    async fn next_list(
        &mut self,
        service: &ServiceName,
        index: Option<u64>,
    ) -> Result<u64, RegistryError> {
        let wait = self.next_wait();
        if !self.lists_only {
            match self.next_changes(service, index, wait).await {
                Ok(answer) => return Ok(answer),
                // The subset's lease is being granted again: soon back.
                Err(error) if error.is_unknown_lease() => return Err(error),
                Err(RegistryError::Rejected(_)) => self.lists_only = true,
                Err(error) => return Err(error),
            }
        }
        let query = index.map(|index| WatchQuery { index, wait });
        let answer = match query {
            Some(query) => self.registry.watch(service, query).await?,
            None => self.registry.resolve(service).await?,
        };
        self.listed = answer.instances;
        Ok(answer.index)
    }

    /// The next answer of the stream of changes, opening one (from
    /// `index`) when none is open; or, after `wait` with none, `index`
    /// again (a stale endpoint is due to go).
    async fn next_changes(
        &mut self,
        service: &ServiceName,
        index: Option<u64>,
        wait: Duration,
    ) -> Result<u64, RegistryError> {
        let stream = match (&mut self.stream, index) {
            (Some(stream), Some(_)) => stream,
            // No index: the first sync, or again after an outage.
            (_, index) => {
                let subset = self.subset_query().await?;
                let query = StreamQuery {
                    index,
                    wait: self.config.watch_wait,
                };
                let opened = self
                    .registry
                    .changes_stream(service, query, subset.as_ref())
                    .await?;
                self.stream.insert(opened)
            }
        };
        let next = tokio::select! {
            next = stream.next() => next,
            () = tokio::time::sleep(wait) => return index.ok_or_else(|| {
                RegistryError::Unreachable("no first answer on the stream of changes".into())
            }),
        };
        match next {
            Ok(Some(answer)) => {
                answer.apply_to(&mut self.listed);
                Ok(answer.index)
            }
            // The registry ended it (shutdown, or the subset's lease
            // ended): the next call opens another from the same index.
            Ok(None) => {
                self.stream = None;
                index.ok_or_else(|| {
                    RegistryError::Unreachable("the stream of changes ended at once".into())
                })
            }
            Err(error) => {
                self.stream = None;
                Err(error)
            }
        }
    }

    /// The subset to ask for, if configured: waits (a while) for its lease
    /// to be granted.
    async fn subset_query(&self) -> Result<Option<SubsetQuery>, RegistryError> {
        let Some(subset) = &self.config.subset else {
            return Ok(None);
        };
        let mut name = subset.client.clone();
        match tokio::time::timeout(self.config.watch_wait, name.granted()).await {
            Ok(Some(client)) => Ok(Some(SubsetQuery {
                size: subset.size,
                client,
            })),
            _ => Err(RegistryError::Unavailable(
                "the subset's lease is not granted yet".into(),
            )),
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

    /// Applies the registry's list as it now stands to the view.
    fn apply(&mut self, view: &ServiceView, after_outage: bool) {
        let now = Instant::now();
        let changes = reconcile(
            &self.tracked,
            |t| t.standing,
            &self.listed,
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
        // The first answer's instances are the fleet the caller starts
        // with: warm. One that joins later starts cold.
        if view.is_synced() {
            endpoint.start_warming(Instant::now());
        }
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
