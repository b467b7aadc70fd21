//! The background task that keeps one registration alive.

use super::{shared::Round, LeaseStatus};
use crate::net::backoff::Backoff;
use crate::registry_client::RegistryClient;
use crate::wire::{HeartbeatQuery, InstanceId, Registration, ServiceName};
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// How a registration stays alive.
#[derive(Debug)]
pub(super) enum Renewal {
    /// On a lease of its own: a heartbeat every `ttl / 3`.
    Own,
    /// On a process's [`SharedLease`](super::SharedLease): registered on
    /// each lease it grants (and again when it asks), never renewed alone.
    Shared(OnShared),
}

/// What a registration on a shared lease follows.
#[derive(Debug)]
pub(super) struct OnShared {
    /// The lease to register on; a new round means "register again".
    pub(super) rounds: watch::Receiver<Option<Round>>,
    /// Where the shared lease stands, for this registration's own status
    /// while it has no lease to register on.
    pub(super) keeper: watch::Receiver<LeaseStatus>,
    /// Told when a registration finds the lease gone.
    pub(super) lost: Arc<Notify>,
    /// How many registrations stand on the present round: a keepalive that
    /// counts fewer instances asks everyone to register again.
    pub(super) standing: Arc<AtomicUsize>,
}

/// The background task behind a [`Lease`](super::Lease).
pub(super) struct Keeper {
    pub(super) registry: RegistryClient,
    pub(super) service: ServiceName,
    pub(super) id: InstanceId,
    pub(super) registration: Registration,
    pub(super) status: watch::Sender<LeaseStatus>,
}

impl Keeper {
    pub(super) async fn run(self, renewal: Renewal, stop: CancellationToken) {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = self.keep(renewal) => {}
        }
    }

    async fn keep(&self, renewal: Renewal) {
        match renewal {
            Renewal::Own => self.keep_alive().await,
            Renewal::Shared(shared) => self.keep_on(shared).await,
        }
    }

    async fn keep_alive(&self) {
        let interval = self.registration.ttl / 3;
        // Retries start fast and never wait longer than a heartbeat interval,
        // so a lease survives a short registry outage.
        let mut backoff = Backoff::new(Duration::from_millis(100), interval);
        // The registration this instance made (its `registered_at`): a
        // heartbeat renews that one only, so a registration someone else
        // put under this id is replaced, not kept alive.
        let mut registered: Option<u64> = None;
        loop {
            let result = match registered {
                Some(at) => {
                    let which = HeartbeatQuery {
                        registered_at: Some(at),
                    };
                    self.registry.renew(&self.service, &self.id, which).await
                }
                None => {
                    self.registry
                        .register(&self.service, &self.id, &self.registration)
                        .await
                }
            };
            let pause = match result {
                Ok(instance) => {
                    if registered.is_none() {
                        self.registered_now();
                    }
                    registered = Some(instance.registered_at);
                    backoff.reset();
                    interval
                }
                Err(e) if e.is_unknown_instance() => {
                    tracing::warn!(service = %self.service, id = %self.id, "lease lost; registering again");
                    registered = None;
                    self.status.send_replace(LeaseStatus::Registering);
                    Duration::ZERO
                }
                Err(e) => {
                    self.failed(&e);
                    backoff.next_delay()
                }
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// Registers on each round of the shared lease; returns when the
    /// shared lease has stopped.
    async fn keep_on(&self, mut shared: OnShared) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            let round = shared.rounds.borrow_and_update().clone();
            let Some(round) = round else {
                // No lease yet: show why, and wait for one.
                let why = shared.keeper.borrow_and_update().clone();
                if matches!(why, LeaseStatus::Retrying(_)) {
                    self.status.send_replace(why);
                }
                tokio::select! {
                    changed = shared.rounds.changed() => if changed.is_err() { return },
                    _ = shared.keeper.changed() => {}
                }
                continue;
            };
            let mut registration = self.registration.clone();
            registration.lease = Some(round.lease.clone());
            match self
                .registry
                .register(&self.service, &self.id, &registration)
                .await
            {
                Ok(_) => {
                    self.registered_now();
                    backoff.reset();
                    let _standing = Standing::on(&shared.standing);
                    // Until the next round (a new lease, or "again").
                    if shared.rounds.changed().await.is_err() {
                        return;
                    }
                    self.status.send_replace(LeaseStatus::Registering);
                }
                Err(e) if e.is_unknown_lease() => {
                    tracing::warn!(service = %self.service, id = %self.id, lease = %round.lease, "shared lease lost; waiting for a new one");
                    self.status.send_replace(LeaseStatus::Registering);
                    shared.lost.notify_one();
                    if shared.rounds.changed().await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    self.failed(&e);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    fn registered_now(&self) {
        if *self.status.borrow() != LeaseStatus::Registered {
            tracing::info!(service = %self.service, id = %self.id, address = %self.registration.address, "registered");
        }
        self.status.send_replace(LeaseStatus::Registered);
    }

    fn failed(&self, e: &crate::registry_client::RegistryError) {
        tracing::warn!(service = %self.service, id = %self.id, "registry call failed: {e}");
        self.status
            .send_replace(LeaseStatus::Retrying(e.to_string()));
    }
}

/// One registration counted as standing on the present round, for as long
/// as this lives.
struct Standing<'a>(&'a AtomicUsize);

impl<'a> Standing<'a> {
    fn on(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Standing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
