//! What the library tells the outside world: events as they happen, and
//! snapshots of every instance on demand.

use crate::breaker::{BreakerState, Ejections};
use crate::net::clock::wall_clock_ms;
use crate::wire::{Address, InstanceId, ServiceName};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// Something that happened to a service's view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Wall-clock milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The service it concerns.
    pub service: ServiceName,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The kinds of [`Event`]. Serialized with a `"kind"` tag, e.g.
/// `{"kind":"breaker_opened","id":"ratings-2",...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The registry listed a new instance.
    InstanceAdded {
        /// Its id.
        id: InstanceId,
        /// Its address.
        address: Address,
    },
    /// The registry no longer lists an instance.
    InstanceRemoved {
        /// Its id.
        id: InstanceId,
        /// Its address.
        address: Address,
    },
    /// An instance's breaker opened: it gets no traffic for `open_for_ms`.
    BreakerOpened {
        /// Its id.
        id: InstanceId,
        /// Its address.
        address: Address,
        /// How long until a probe.
        open_for_ms: u64,
        /// The failure that tripped it.
        error: String,
    },
    /// An instance's breaker half-opened: the next request probes it.
    BreakerHalfOpened {
        /// Its id.
        id: InstanceId,
        /// Its address.
        address: Address,
    },
    /// An instance's breaker closed: it is back in rotation.
    BreakerClosed {
        /// Its id.
        id: InstanceId,
        /// Its address.
        address: Address,
    },
    /// No registry answers; the last-known instances stay in use.
    RegistryLost {
        /// Why.
        error: String,
    },
    /// A registry answers again.
    RegistryRegained,
}

/// The walkthrough's log lines: `OPEN breaker on [ratings at
/// http://127.0.0.1:8002]`, `ratings instance ratings-3 added:
/// http://127.0.0.1:8003`, … — what the library logs for each event.
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let service = &self.service;
        match &self.kind {
            EventKind::InstanceAdded { id, address } => {
                write!(f, "{service} instance {id} added: {address}")
            }
            EventKind::InstanceRemoved { id, address } => {
                write!(f, "{service} instance {id} removed: {address}")
            }
            EventKind::BreakerOpened { address, .. } => {
                write!(f, "OPEN breaker on [{service} at {address}]")
            }
            EventKind::BreakerHalfOpened { address, .. } => {
                write!(f, "HALF-OPEN breaker on [{service} at {address}]")
            }
            EventKind::BreakerClosed { address, .. } => {
                write!(f, "CLOSE breaker on [{service} at {address}]")
            }
            EventKind::RegistryLost { error } => {
                write!(
                    f,
                    "registry unreachable; using last-known {service} instances: {error}"
                )
            }
            EventKind::RegistryRegained => {
                write!(f, "registry reachable again; {service} view is live")
            }
        }
    }
}

impl EventKind {
    /// Whether the event means something went wrong (logged as a warning).
    pub fn is_warning(&self) -> bool {
        matches!(self, Self::BreakerOpened { .. } | Self::RegistryLost { .. })
    }
}

impl Event {
    pub(crate) fn now(service: &ServiceName, kind: EventKind) -> Self {
        Self {
            at_ms: wall_clock_ms(),
            service: service.clone(),
            kind,
        }
    }
}

/// Where one service's events go: the resolver's broadcast. Each endpoint
/// holds one, so a breaker reports its own transitions — nobody has to hand
/// them on, and none can be lost on the way. It also carries the service's
/// change signal, which wakes whoever waits for an instance to be ready.
#[derive(Debug, Clone)]
pub(crate) struct EventSink {
    service: ServiceName,
    events: broadcast::Sender<Event>,
    /// Bumped at every breaker transition and instance-list change; shared
    /// by the view and all its endpoints.
    changed: Arc<watch::Sender<()>>,
    /// How many of the service's instances are out, for the failure-rate
    /// ejection cap.
    ejections: Arc<Ejections>,
}

impl EventSink {
    /// A sink for `service`'s events.
    pub(crate) fn new(service: ServiceName, events: broadcast::Sender<Event>) -> Self {
        Self {
            service,
            events,
            changed: Arc::new(watch::Sender::new(())),
            ejections: Arc::default(),
        }
    }

    /// The service's count of instances out.
    pub(crate) fn ejections(&self) -> &Ejections {
        &self.ejections
    }

    /// A receiver of the events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Tells waiters that readiness may have changed.
    pub(crate) fn signal_change(&self) {
        self.changed.send_replace(());
    }

    /// A receiver of change signals.
    pub(crate) fn changes(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// Logs `kind` (its [`Display`](Event#impl-Display-for-Event) line)
    /// and broadcasts it, stamped now.
    pub(crate) fn emit(&self, kind: EventKind) {
        let event = Event::now(&self.service, kind);
        if event.kind.is_warning() {
            tracing::warn!("{event}");
        } else {
            tracing::info!("{event}");
        }
        // No subscribers is fine: events are for whoever listens.
        let _ = self.events.send(event);
    }
}

/// One instance as the client sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceSnapshot {
    /// Its id.
    pub id: InstanceId,
    /// Its address.
    pub address: Address,
    /// Its breaker's state.
    pub breaker: BreakerState,
    /// Requests it answered well.
    pub successes: u64,
    /// Requests that failed on it (timeouts, connect errors, 5xx).
    pub failures: u64,
    /// The most recent failure, if any.
    pub last_error: Option<String>,
    /// Its latency estimate (peak-sensitive moving average, decayed to
    /// now), once it has answered.
    pub latency_ms: Option<f64>,
    /// Attempts in flight to it.
    pub in_flight: u32,
    /// The calls it can take at once, as learned from its answers (see
    /// [`Limits::adaptive`](crate::client::Limits::adaptive)); kept to
    /// only by clients that ask for adaptive limits.
    pub learned_limit: u32,
    /// The utilization it last reported on an answer (ORCA's
    /// `endpoint-load-metrics`; 1.0 is full), believed by the balancer or
    /// not yet (see [`OverloadLayer`](crate::overload::OverloadLayer)).
    pub reported_utilization: Option<f64>,
    /// The zone it registered in (its `zone` metadata), if any.
    pub zone: Option<String>,
    /// The site (data center) whose registry lists it, for a client that
    /// knows its sites (see [`site`](crate::client::site)).
    pub dc: Option<String>,
}

/// A service as the client sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSnapshot {
    /// The service.
    pub service: ServiceName,
    /// Whether the last registry call succeeded.
    pub registry_reachable: bool,
    /// Its instances, ordered by id.
    pub instances: Vec<InstanceSnapshot>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_display_as_the_walkthrough_logs_them() {
        let service: ServiceName = "ratings".parse().expect("name");
        let id: InstanceId = "ratings-2".parse().expect("id");
        let address = Address::new("http://127.0.0.1:8002").expect("address");
        let line = |kind| Event::now(&service, kind).to_string();
        assert_eq!(
            line(EventKind::BreakerOpened {
                id: id.clone(),
                address: address.clone(),
                open_for_ms: 500,
                error: "timeout".into(),
            }),
            "OPEN breaker on [ratings at http://127.0.0.1:8002]"
        );
        assert_eq!(
            line(EventKind::InstanceAdded {
                id: id.clone(),
                address: address.clone(),
            }),
            "ratings instance ratings-2 added: http://127.0.0.1:8002"
        );
        assert_eq!(
            line(EventKind::BreakerClosed { id, address }),
            "CLOSE breaker on [ratings at http://127.0.0.1:8002]"
        );
        assert_eq!(
            line(EventKind::RegistryRegained),
            "registry reachable again; ratings view is live"
        );
    }
}
