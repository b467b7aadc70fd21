//! Why a call through a [`ServiceClient`](super::ServiceClient) failed.

use crate::net::http::error_chain;
use crate::wire::{Address, ServiceName};
use http::StatusCode;
use std::{error::Error, sync::Arc, time::Duration};

/// A cause kept behind an error: shared, so errors stay cheap to clone.
pub type Cause = Arc<dyn Error + Send + Sync>;

/// A failed call. `NoInstances`, `AllUnavailable` and `AllAtCapacity` are
/// the fail-fast answers: no instance could take the request, so none was
/// tried and no time was spent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The registry lists no instance of the service (or has not answered yet).
    #[error("no {service} instances are registered")]
    NoInstances {
        /// The service called.
        service: ServiceName,
    },
    /// The view of the service never had a registry answer within the
    /// call's deadline: the registry was not reached (or did not answer),
    /// so nothing is known about the service's instances.
    #[error("no {service} instances known: {error}")]
    RegistryUnreachable {
        /// The service called.
        service: ServiceName,
        /// Why the registry was not reached: each URL and its failure.
        error: String,
    },
    /// Every instance's breaker is open (or probing).
    #[error("all {service} instances are down")]
    AllUnavailable {
        /// The service called.
        service: ServiceName,
    },
    /// Every instance that would take the call has as many calls in flight
    /// as it may ([`ClientConfig::max_in_flight`](super::ClientConfig::max_in_flight)):
    /// refused at once rather than queued.
    #[error("every available {service} instance has {limit} calls in flight, its cap")]
    AllAtCapacity {
        /// The service called.
        service: ServiceName,
        /// The cap per instance.
        limit: u32,
    },
    /// The instance did not answer within the attempt timeout.
    #[error("{address} did not answer within {after:?}")]
    Timeout {
        /// Where the attempt went.
        address: Address,
        /// The attempt timeout.
        after: Duration,
    },
    /// No connection could be made.
    #[error("cannot connect to {address}")]
    Connect {
        /// Where the attempt went.
        address: Address,
        /// What the transport said.
        #[source]
        cause: Cause,
    },
    /// The connection failed mid-exchange, or the answer was unreadable.
    #[error("request to {address} failed")]
    Transport {
        /// Where the attempt went.
        address: Address,
        /// What the transport said.
        #[source]
        cause: Cause,
    },
    /// The instance could not show it is the service called: its
    /// certificate names another (see
    /// [`ClientConfig::verify_identity`](super::ClientConfig::verify_identity)).
    /// No request was sent to it.
    #[error("{address} is not the service called")]
    IdentityMismatch {
        /// Where the attempt went.
        address: Address,
        /// What it showed instead.
        #[source]
        mismatch: super::IdentityMismatch,
    },
    /// The instance answered with a 5xx.
    #[error("{address} answered {status}")]
    ServerError {
        /// Where the attempt went.
        address: Address,
        /// The status.
        status: StatusCode,
    },
    /// The instance was full: it shed the request unserved (503 with
    /// `Retry-After`, as an [`OverloadLayer`](crate::overload::OverloadLayer)
    /// answers). Not held against its breaker; tried on another instance.
    #[error("{address} is overloaded: it shed the request unserved")]
    Overloaded {
        /// Where the attempt went.
        address: Address,
    },
    /// A gRPC instance answered UNAVAILABLE (shutting down, shedding
    /// load): its 503.
    #[error("{address} answered gRPC status UNAVAILABLE")]
    GrpcUnavailable {
        /// Where the attempt went.
        address: Address,
    },
    /// The overall deadline passed before any attempt succeeded.
    #[error("no answer within the {deadline:?} deadline")]
    DeadlineExceeded {
        /// The deadline.
        deadline: Duration,
    },
    /// The request itself can't be sent (e.g. a URI that isn't a path).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The caller's own request body failed (its stream returned an
    /// error): nothing the instance did, so no breaker counts it.
    #[error("reading the request body failed")]
    RequestBody {
        /// What the body's stream said.
        #[source]
        cause: Cause,
    },
    /// The attempt failed, and the call could not be sent again: its body
    /// was over the replay limit, so it had streamed to that instance only.
    #[error("{error}; not retried: the request body is over the {limit}-byte replay limit")]
    NotRetried {
        /// Why the attempt failed.
        error: Box<ClientError>,
        /// The replay limit ([`ClientConfig::replay_limit`](super::ClientConfig::replay_limit)).
        limit: usize,
    },
}

impl ClientError {
    /// This error with its causes, for people (see [`error_chain`]).
    pub fn chain(&self) -> String {
        error_chain(self)
    }

    /// The instance the failed attempt went to, if one was tried.
    pub fn address(&self) -> Option<&Address> {
        match self {
            Self::Timeout { address, .. }
            | Self::Connect { address, .. }
            | Self::Transport { address, .. }
            | Self::IdentityMismatch { address, .. }
            | Self::ServerError { address, .. }
            | Self::Overloaded { address }
            | Self::GrpcUnavailable { address } => Some(address),
            Self::NotRetried { error, .. } => error.address(),
            _ => None,
        }
    }

    /// Whether this is a fail-fast answer (nothing was tried).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::NoInstances { .. } | Self::AllUnavailable { .. })
    }
}
