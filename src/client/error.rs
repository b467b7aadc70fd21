//! Why a call through a [`ServiceClient`](super::ServiceClient) failed.

use crate::wire::{Address, ServiceName};
use http::StatusCode;
use std::time::Duration;

/// A failed call. The first two variants are the fail-fast answers: no
/// instance could take the request, so none was tried and no time was spent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The registry lists no instance of the service (or has not answered yet).
    #[error("no {service} instances are registered")]
    NoInstances {
        /// The service called.
        service: ServiceName,
    },
    /// Every instance's breaker is open (or probing).
    #[error("all {service} instances are down")]
    AllUnavailable {
        /// The service called.
        service: ServiceName,
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
    #[error("cannot connect to {address}: {reason}")]
    Connect {
        /// Where the attempt went.
        address: Address,
        /// The transport's words.
        reason: String,
    },
    /// The connection failed mid-exchange, or the answer was unreadable.
    #[error("request to {address} failed: {reason}")]
    Transport {
        /// Where the attempt went.
        address: Address,
        /// The transport's words.
        reason: String,
    },
    /// The instance answered with a 5xx.
    #[error("{address} answered {status}")]
    ServerError {
        /// Where the attempt went.
        address: Address,
        /// The status.
        status: StatusCode,
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
}

impl ClientError {
    /// Whether this is a fail-fast answer (nothing was tried).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::NoInstances { .. } | Self::AllUnavailable { .. })
    }
}
