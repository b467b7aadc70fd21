//! The service side: keep an instance registered for as long as it runs.
//!
//! [`Lease::start`] registers in the background and then heartbeats every
//! `ttl / 3`. A heartbeat answered `404 unknown_instance` (the registry
//! restarted, or the lease ran out while the process was paused) registers
//! again at once. While no registry answers, the lease keeps retrying with
//! capped, jittered backoff — the service itself keeps serving throughout.
//! [`Lease::shutdown`] deregisters; dropping a lease deregisters on a best
//! effort basis.
//!
//! A process that serves many instances (or many services) shares one
//! [`SharedLease`] among them: it renews one registry lease every `ttl / 3`,
//! and each [`SharedLease::register`] gives a [`Lease`] handle that
//! registers on it and otherwise sends nothing. Ending the shared lease
//! removes every instance on it at once.

mod keeper;
mod shared;

pub use shared::{LeaseName, SharedLease};

use crate::registry_client::{RegistryClient, RegistryError};
use crate::wire::{InstanceId, Registration, ServiceName};
use keeper::{Keeper, Renewal};
use std::time::Duration;
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// Where a lease stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseStatus {
    /// Not registered yet, or lost and not yet registered again.
    Registering,
    /// Registered; heartbeats are being accepted.
    Registered,
    /// The last attempt failed; retrying. Holds the reason.
    Retrying(String),
}

/// A lease that was not registered in the time given, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service}/{id} not registered within {patience:?}: {why}")]
pub struct NotRegistered {
    /// The service.
    pub service: ServiceName,
    /// The instance.
    pub id: InstanceId,
    /// How long it was waited for.
    pub patience: Duration,
    /// The last attempt's failure.
    pub why: String,
}

/// A registration kept alive in the background.
#[derive(Debug)]
pub struct Lease {
    registry: RegistryClient,
    service: ServiceName,
    id: InstanceId,
    status: watch::Receiver<LeaseStatus>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Lease {
    /// Starts registering `id` in `service` and keeping it alive. Returns at
    /// once; see [`registered`](Self::registered) to wait for the first success.
    pub fn start(
        registry: RegistryClient,
        service: ServiceName,
        id: InstanceId,
        registration: Registration,
    ) -> Self {
        Self::kept(registry, service, id, registration, Renewal::Own)
    }

    /// A lease whose registration `renewal` keeps.
    fn kept(
        registry: RegistryClient,
        service: ServiceName,
        id: InstanceId,
        registration: Registration,
        renewal: Renewal,
    ) -> Self {
        let (tx, status) = watch::channel(LeaseStatus::Registering);
        let stop = CancellationToken::new();
        let keeper = Keeper {
            registry: registry.clone(),
            service: service.clone(),
            id: id.clone(),
            registration,
            status: tx,
        };
        let task = tokio::spawn(keeper.run(renewal, stop.clone()));
        Self {
            registry,
            service,
            id,
            status,
            stop,
            task: Some(task),
        }
    }

    /// The current status.
    pub fn status(&self) -> LeaseStatus {
        self.status.borrow().clone()
    }

    /// Waits until the instance is registered, at most `patience`: `Err`
    /// says why it is not — the last failure (e.g. "no registry reachable:
    /// http://127.0.0.1:8400: connection refused") — so a service can say
    /// so and exit rather than wait in silence.
    pub async fn registered_within(&self, patience: Duration) -> Result<(), NotRegistered> {
        if tokio::time::timeout(patience, self.registered())
            .await
            .is_ok()
        {
            return Ok(());
        }
        let why = match self.status() {
            LeaseStatus::Retrying(reason) => reason,
            LeaseStatus::Registering => "no answer from the registry yet".into(),
            LeaseStatus::Registered => return Ok(()),
        };
        Err(NotRegistered {
            service: self.service.clone(),
            id: self.id.clone(),
            patience,
            why,
        })
    }

    /// Waits until the instance is registered (right away if it is), however
    /// long that takes: while the registry is away, this waits (the lease
    /// logs each failed attempt through `tracing`);
    /// [`registered_within`](Self::registered_within) gives up and says why.
    pub async fn registered(&self) {
        let mut status = self.status.clone();
        // The sender lives as long as the keeper task; if that is gone the
        // lease is shutting down and there is nothing left to wait for.
        let _ = status.wait_for(|s| *s == LeaseStatus::Registered).await;
    }

    /// Stops heartbeating and deregisters, so that callers stop routing here
    /// before the process exits. Call it first in graceful shutdown. The
    /// heartbeats have stopped whatever it returns: an `Err` only says the
    /// deregistration did not reach the registry (the instance then goes
    /// when its TTL runs out), so log it and drain anyway rather than `?`.
    pub async fn shutdown(mut self) -> Result<(), RegistryError> {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        match self.registry.deregister(&self.service, &self.id).await {
            Err(e) if e.is_unknown_instance() => Ok(()),
            other => other,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else {
            return; // shut down already
        };
        self.stop.cancel();
        task.abort();
        // Best effort: deregister if a runtime is still there to do it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (registry, service, id) =
                (self.registry.clone(), self.service.clone(), self.id.clone());
            runtime.spawn(async move {
                let _ = registry.deregister(&service, &id).await;
            });
        }
    }
}
