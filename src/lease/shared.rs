//! One registry lease for a whole process.

use super::{
    keeper::{OnShared, Renewal},
    Lease, LeaseStatus,
};
use crate::net::backoff::Backoff;
use crate::registry_client::{RegistryClient, RegistryError};
use crate::wire::{InstanceId, LeaseId, Registration, ServiceName};
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{
    sync::{watch, Notify},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

/// A lease shared by every registration of a process: one keepalive every
/// `ttl / 3` renews them all, however many instances (of however many
/// services) the process serves, and ending it removes them all at once.
///
/// ```no_run
/// # async fn run(registry: beacon::RegistryClient) -> Result<(), Box<dyn std::error::Error>> {
/// use beacon::{wire::Registration, SharedLease};
/// use std::time::Duration;
///
/// let shared = SharedLease::start(registry, Duration::from_secs(15));
/// let mut leases = Vec::new();
/// for port in 8001..8101 {
///     let address = format!("http://127.0.0.1:{port}").parse()?;
///     let id = format!("ratings-{port}").parse()?;
///     leases.push(shared.register("ratings".parse()?, id, Registration::new(address)));
/// }
/// for lease in &leases {
///     lease.registered_within(Duration::from_secs(5)).await?;
/// }
/// // ... serve ...
/// shared.shutdown().await?; // all 100 leave the registry at once
/// # Ok(()) }
/// ```
///
/// When the registry no longer holds the lease (it restarted, or the
/// process was paused past the TTL), a new one is granted and every
/// registration made through [`register`](Self::register) registers on
/// it again; so they do when a keepalive counts fewer instances on the
/// lease than registered here (one was deregistered behind the process's
/// back).
#[derive(Debug)]
pub struct SharedLease {
    registry: RegistryClient,
    rounds: watch::Receiver<Option<Round>>,
    status: watch::Receiver<LeaseStatus>,
    lost: Arc<Notify>,
    standing: Arc<AtomicUsize>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// The id of a [`SharedLease`] as it stands, the lease granted again
/// included. Cheap to clone; outlives the lease (its id is then the last).
#[derive(Debug, Clone)]
pub struct LeaseName {
    rounds: watch::Receiver<Option<Round>>,
}

impl LeaseName {
    /// The lease's id, once granted.
    pub fn current(&self) -> Option<LeaseId> {
        self.rounds.borrow().as_ref().map(|r| r.lease.clone())
    }

    /// The lease's id, waiting for the grant if there is none yet; `None`
    /// if the lease was dropped before it was granted.
    pub async fn granted(&mut self) -> Option<LeaseId> {
        let round = self.rounds.wait_for(Option::is_some).await.ok()?;
        round.as_ref().map(|r| r.lease.clone())
    }
}

/// The lease to register on, and how many times registrations were asked
/// to register on it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Round {
    pub(super) lease: LeaseId,
    again: u64,
}

impl SharedLease {
    /// Starts granting a lease of `ttl` and keeping it alive. Returns at
    /// once; registrations made before the grant wait for it.
    pub fn start(registry: RegistryClient, ttl: Duration) -> Self {
        let (rounds_tx, rounds) = watch::channel(None);
        let (status_tx, status) = watch::channel(LeaseStatus::Registering);
        let lost = Arc::new(Notify::new());
        let standing = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let keeper = SharedKeeper {
            registry: registry.clone(),
            ttl,
            rounds: rounds_tx,
            status: status_tx,
            lost: Arc::clone(&lost),
            standing: Arc::clone(&standing),
        };
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = keeper.keep_alive() => {}
                }
            }
        });
        Self {
            registry,
            rounds,
            status,
            lost,
            standing,
            stop,
            task: Some(task),
        }
    }

    /// Registers `id` in `service` on this lease (`registration.ttl` is not
    /// used: the lease's applies) and keeps it registered while the lease
    /// lives. The [`Lease`] it returns works as one of its own does;
    /// its [`shutdown`](Lease::shutdown) deregisters that instance alone.
    pub fn register(
        &self,
        service: ServiceName,
        id: InstanceId,
        registration: Registration,
    ) -> Lease {
        let on = OnShared {
            rounds: self.rounds.clone(),
            keeper: self.status.clone(),
            lost: Arc::clone(&self.lost),
            standing: Arc::clone(&self.standing),
        };
        Lease::kept(
            self.registry.clone(),
            service,
            id,
            registration,
            Renewal::Shared(on),
        )
    }

    /// The lease's id, once granted.
    pub fn id(&self) -> Option<LeaseId> {
        self.rounds
            .borrow()
            .as_ref()
            .map(|round| round.lease.clone())
    }

    /// A handle on the lease's id that follows it across re-grants: what
    /// names this process to the registry, e.g. to rank it for a
    /// [`Subset`](crate::Subset).
    pub fn name(&self) -> LeaseName {
        LeaseName {
            rounds: self.rounds.clone(),
        }
    }

    /// Where the lease stands: `Registered` once granted and kept alive.
    pub fn status(&self) -> LeaseStatus {
        self.status.borrow().clone()
    }

    /// Stops keeping the lease alive and ends it: every instance on it
    /// leaves the registry at once (one change per service for watchers).
    /// An `Err` says the registry was not told; the instances then go when
    /// the TTL runs out.
    pub async fn shutdown(mut self) -> Result<(), RegistryError> {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        match self.id() {
            Some(lease) => match self.registry.revoke(&lease).await {
                Err(e) if e.is_unknown_lease() => Ok(()),
                other => other,
            },
            None => Ok(()),
        }
    }
}

impl Drop for SharedLease {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else {
            return; // shut down already
        };
        self.stop.cancel();
        task.abort();
        // Best effort: end the lease if a runtime is still there to do it.
        if let (Ok(runtime), Some(lease)) = (tokio::runtime::Handle::try_current(), self.id()) {
            let registry = self.registry.clone();
            runtime.spawn(async move {
                let _ = registry.revoke(&lease).await;
            });
        }
    }
}

/// The background task behind a [`SharedLease`].
struct SharedKeeper {
    registry: RegistryClient,
    ttl: Duration,
    rounds: watch::Sender<Option<Round>>,
    status: watch::Sender<LeaseStatus>,
    lost: Arc<Notify>,
    standing: Arc<AtomicUsize>,
}

impl SharedKeeper {
    async fn keep_alive(&self) {
        let interval = self.ttl / 3;
        let mut backoff = Backoff::new(Duration::from_millis(100), interval);
        loop {
            let lease = self.rounds.borrow().as_ref().map(|r| r.lease.clone());
            let pause = match lease {
                None => match self.registry.grant(self.ttl).await {
                    Ok(grant) => {
                        tracing::info!(lease = %grant.lease, ttl_ms = grant.ttl_ms, "shared lease granted");
                        self.rounds.send_replace(Some(Round {
                            lease: grant.lease,
                            again: 0,
                        }));
                        self.status.send_replace(LeaseStatus::Registered);
                        backoff.reset();
                        interval
                    }
                    Err(e) => self.failed(&e, &mut backoff),
                },
                Some(lease) => match self.registry.keep_alive(&lease).await {
                    Ok(kept) => {
                        let here = self.standing.load(Ordering::Acquire) as u64;
                        if kept.instances < here {
                            tracing::warn!(%lease, on_lease = kept.instances, registered_here = here, "instances missing from the shared lease; registering them again");
                            self.rounds.send_modify(|round| {
                                if let Some(round) = round {
                                    round.again += 1;
                                }
                            });
                        }
                        self.status.send_replace(LeaseStatus::Registered);
                        backoff.reset();
                        interval
                    }
                    Err(e) if e.is_unknown_lease() => {
                        tracing::warn!(%lease, "shared lease lost; granting a new one");
                        self.rounds.send_replace(None);
                        self.status.send_replace(LeaseStatus::Registering);
                        Duration::ZERO
                    }
                    Err(e) => self.failed(&e, &mut backoff),
                },
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                // A registration found the lease gone: check it now.
                _ = self.lost.notified() => {}
            }
        }
    }

    fn failed(&self, e: &RegistryError, backoff: &mut Backoff) -> Duration {
        tracing::warn!("shared lease: registry call failed: {e}");
        self.status
            .send_replace(LeaseStatus::Retrying(e.to_string()));
        backoff.next_delay()
    }
}
