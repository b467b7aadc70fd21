//! Shared leases: one lease that many instances live on, so a process
//! serving many instances (or many services) renews once.
//!
//! `POST /v1/leases` grants one ([`GrantRequest`] → [`LeaseGrant`]);
//! `PUT /v1/leases/{lease}/keepalive` renews it ([`LeaseStatus`]);
//! `DELETE /v1/leases/{lease}` ends it, and every instance on it goes at
//! once. A registration names it in [`RegisterRequest::lease`](super::RegisterRequest::lease).

use super::body::{duration_ms, validate_ttl};
use super::error::WireError;
use super::names::LeaseId;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Body of `POST /v1/leases`, as sent: loose, like a registration's
/// `ttl_ms`, so a bad value is answered `invalid_ttl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantRequest {
    /// Lease length in milliseconds; the default TTL when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<u64>, minimum = 1000, maximum = 3_600_000)
    )]
    pub ttl_ms: Option<serde_json::Number>,
}

impl GrantRequest {
    /// A request for a lease of `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl_ms: Some(serde_json::Number::from(duration_ms(ttl))),
        }
    }

    /// The lease length asked for, checked as a registration's is.
    pub fn validate(&self) -> Result<Duration, WireError> {
        validate_ttl(self.ttl_ms.as_ref())
    }
}

/// Answer to `POST /v1/leases` (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseGrant {
    /// The lease's id: name it in registrations and keep it alive.
    pub lease: LeaseId,
    /// Its length: keep it alive well within this.
    pub ttl_ms: u64,
}

/// Answer to `PUT /v1/leases/{lease}/keepalive`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseStatus {
    /// The lease renewed.
    pub lease: LeaseId,
    /// Its length, from now.
    pub ttl_ms: u64,
    /// How many instances live on it.
    pub instances: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorCode, RegisterRequest};

    #[test]
    fn a_grant_defaults_and_checks_its_ttl() {
        let empty: GrantRequest = serde_json::from_str("{}").expect("parses");
        assert_eq!(empty.validate(), Ok(crate::DEFAULT_TTL));
        let short: GrantRequest = serde_json::from_str(r#"{"ttl_ms":5}"#).expect("parses");
        assert_eq!(
            short.validate().map_err(|e| e.code),
            Err(ErrorCode::InvalidTtl)
        );
        let asked = GrantRequest::new(Duration::from_secs(4));
        assert_eq!(asked.validate(), Ok(Duration::from_secs(4)));
        assert!(serde_json::from_str::<GrantRequest>(r#"{"ttl":5}"#).is_err());
    }

    #[test]
    fn a_registration_lives_by_a_ttl_or_a_lease_not_both() {
        let on_lease: RegisterRequest =
            serde_json::from_str(r#"{"address":"http://127.0.0.1:1","lease":"l-1"}"#)
                .expect("parses");
        let registration = on_lease.validate().expect("valid");
        assert_eq!(registration.lease.as_ref().map(|l| l.as_str()), Some("l-1"));
        let request = registration.to_request();
        assert_eq!(request.ttl_ms, None, "a leased registration sends no ttl");
        let both: RegisterRequest =
            serde_json::from_str(r#"{"address":"http://127.0.0.1:1","lease":"l-1","ttl_ms":5000}"#)
                .expect("parses");
        assert_eq!(
            both.validate().map_err(|e| e.code),
            Err(ErrorCode::InvalidRegistration)
        );
        let bad: Result<RegisterRequest, _> =
            serde_json::from_str(r#"{"address":"http://127.0.0.1:1","lease":"Bad"}"#);
        assert!(bad.is_err(), "lease ids follow the name rule");
    }
}
