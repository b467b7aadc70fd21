//! Request and response bodies of the registry API.

use super::error::{ErrorCode, WireError};
use super::names::{Address, InstanceId, LeaseId, ServiceName};
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, time::Duration};

/// Free-form labels an instance registers with (zone, version, weight...).
/// Ordered, so that equal metadata always serializes identically.
pub type Metadata = BTreeMap<String, String>;

/// The metadata key that names an instance's zone (e.g. `"zone": "a"`):
/// callers configured with a zone of their own prefer instances in it.
pub const ZONE: &str = "zone";

/// The metadata key that names an instance's site, its data center (e.g.
/// `"dc": "a"`): every binary's `--dc`.
pub const DC: &str = "dc";

/// Lease length when a registration names none.
pub const DEFAULT_TTL: Duration = Duration::from_millis(15_000);
/// Shortest lease the registry grants: shorter ones would turn heartbeats
/// into a load test.
pub const MIN_TTL: Duration = Duration::from_millis(1_000);
/// Longest lease the registry grants: an hour is already a long time to
/// route to a dead instance.
pub const MAX_TTL: Duration = Duration::from_millis(3_600_000);

/// Body of `PUT /v1/services/{service}/instances/{id}`, as sent.
///
/// Deliberately loose (`ttl_ms` is any JSON number) so that the registry can
/// answer a bad value with `invalid_ttl` instead of a parse error; call
/// [`validate`](Self::validate) to get a [`Registration`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    /// Where the instance answers, e.g. `http://127.0.0.1:8001`.
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = r"^https?://[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$",
            example = "http://127.0.0.1:8001"
        )
    )]
    pub address: String,
    /// Lease length in milliseconds; [`DEFAULT_TTL`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<u64>, minimum = 1000, maximum = 3_600_000)
    )]
    pub ttl_ms: Option<serde_json::Number>,
    /// A shared lease (`POST /v1/leases`) to live on instead of a lease of
    /// the instance's own; not together with `ttl_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseId>,
    /// Labels; empty when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// Most metadata an instance may carry: its keys and values together, in
/// bytes. Labels for routing (zone, version, weight), not a document
/// store: a registry holds every instance's metadata in memory and sends
/// it to every watcher.
pub const MAX_METADATA_BYTES: usize = 4096;

impl RegisterRequest {
    /// Checks the address, TTL and metadata, naming the first bad field.
    pub fn validate(self) -> Result<Registration, WireError> {
        let address = Address::new(&self.address)?;
        if self.ttl_ms.is_some() && self.lease.is_some() {
            return Err(WireError::new(
                ErrorCode::InvalidRegistration,
                "give ttl_ms or lease, not both: an instance on a shared lease lives as long as the lease",
            ));
        }
        let metadata_bytes: usize = self
            .metadata
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if metadata_bytes > MAX_METADATA_BYTES {
            return Err(WireError::new(
                ErrorCode::InvalidRegistration,
                format!(
                    "metadata of {metadata_bytes} bytes (keys and values): at most {MAX_METADATA_BYTES}"
                ),
            ));
        }
        Ok(Registration {
            address,
            ttl: validate_ttl(self.ttl_ms.as_ref())?,
            lease: self.lease,
            metadata: self.metadata.unwrap_or_default(),
        })
    }
}

/// A lease length as sent (`ttl_ms`, any JSON number), checked:
/// [`DEFAULT_TTL`] when absent, else whole milliseconds in
/// [`MIN_TTL`]`..=`[`MAX_TTL`].
pub(crate) fn validate_ttl(ttl_ms: Option<&serde_json::Number>) -> Result<Duration, WireError> {
    let Some(n) = ttl_ms else {
        return Ok(DEFAULT_TTL);
    };
    // A whole number, also when written 15000.0 (JSON does not tell
    // integers from other numbers).
    let ms = n
        .as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=MAX_TTL.as_millis() as f64).contains(f))
                .map(|f| f as u64)
        })
        .ok_or_else(|| ttl_error(&n.to_string()))?;
    let ttl = Duration::from_millis(ms);
    if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
        return Err(ttl_error(&ms.to_string()));
    }
    Ok(ttl)
}

fn ttl_error(value: &str) -> WireError {
    WireError::new(
        ErrorCode::InvalidTtl,
        format!(
            "ttl_ms {value} is not a whole number of milliseconds in {}..={}",
            MIN_TTL.as_millis(),
            MAX_TTL.as_millis()
        ),
    )
}

/// A validated registration: what the registry stores and what a service
/// hands to the library to register itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Where the instance answers.
    pub address: Address,
    /// Lease length; the instance must heartbeat well within it. Not used
    /// when `lease` names a shared lease (its own length applies).
    pub ttl: Duration,
    /// A shared lease to live on instead of one of the instance's own.
    pub lease: Option<LeaseId>,
    /// Labels.
    pub metadata: Metadata,
}

impl Registration {
    /// A registration at `address` with the default TTL and no metadata.
    pub fn new(address: Address) -> Self {
        Self {
            address,
            ttl: DEFAULT_TTL,
            lease: None,
            metadata: Metadata::new(),
        }
    }

    /// The body that registers this on the wire.
    pub fn to_request(&self) -> RegisterRequest {
        let own_ttl = self.lease.is_none();
        RegisterRequest {
            address: self.address.to_string(),
            ttl_ms: own_ttl.then(|| serde_json::Number::from(duration_ms(self.ttl))),
            lease: self.lease.clone(),
            metadata: Some(self.metadata.clone()),
        }
    }
}

/// A registered instance as the registry reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Instance {
    /// The service it belongs to.
    pub service: ServiceName,
    /// Its id, unique within the service.
    pub id: InstanceId,
    /// Where it answers.
    pub address: Address,
    /// Its labels.
    pub metadata: Metadata,
    /// Its lease length (its shared lease's, when on one).
    pub ttl_ms: u64,
    /// The shared lease it lives on, if it is on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseId>,
    /// When it last registered, in milliseconds since the Unix epoch.
    pub registered_at: u64,
    /// How long until its lease runs out unless renewed, as of this answer.
    pub expires_in_ms: u64,
}

/// Body of `GET /v1/services/{service}`: the live instances and the index to
/// long-poll from next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceInstances {
    /// The service asked for.
    pub service: ServiceName,
    /// The service's change index; pass it back as `?index=` to wait for the
    /// next change. 0 for a service that never had an instance.
    pub index: u64,
    /// Live instances, ordered by id.
    pub instances: Vec<Instance>,
}

/// Body of `GET /v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceList {
    /// The registry-wide change index (the highest of all services').
    pub index: u64,
    /// Every service with at least one live instance, ordered by name.
    pub services: Vec<ServiceSummary>,
}

/// One service in a [`ServiceList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceSummary {
    /// The service's name.
    pub name: ServiceName,
    /// Its live instances, ordered by id.
    pub instances: Vec<Instance>,
}

/// Whole milliseconds in `d`, saturating (TTLs and waits are far below the limit).
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> RegisterRequest {
        serde_json::from_str(json).expect("parses")
    }

    #[test]
    fn defaults_apply() {
        let reg = request(r#"{"address":"http://127.0.0.1:8001"}"#)
            .validate()
            .expect("valid");
        assert_eq!(reg.ttl, DEFAULT_TTL);
        assert!(reg.metadata.is_empty());
    }

    #[test]
    fn ttl_bounds_are_inclusive_and_checked() {
        for (ok, ms) in [
            ("1000", 1000),
            ("3600000", 3_600_000),
            ("15000.0", 15_000),
            ("2e3", 2000),
        ] {
            let json = format!(r#"{{"address":"http://127.0.0.1:8001","ttl_ms":{ok}}}"#);
            let registration = request(&json).validate().expect(ok);
            assert_eq!(registration.ttl, Duration::from_millis(ms), "{ok}");
        }
        for bad in ["999", "3600001", "-5", "1.5", "1e30", "999.0"] {
            let json = format!(r#"{{"address":"http://127.0.0.1:8001","ttl_ms":{bad}}}"#);
            let err = request(&json).validate().expect_err(bad);
            assert_eq!(err.code, ErrorCode::InvalidTtl, "{bad}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<RegisterRequest>(
            r#"{"address":"http://127.0.0.1:8001","ttl":5000}"#,
        )
        .expect_err("typo must not pass silently");
        assert!(err.to_string().contains("ttl"), "{err}");
    }

    #[test]
    fn registration_round_trips_through_the_wire_form() {
        let mut reg = Registration::new(Address::new("http://127.0.0.1:8001").expect("valid"));
        reg.metadata.insert("zone".into(), "a".into());
        let back = reg.to_request().validate().expect("valid");
        assert_eq!(back, reg);
    }
}
