//! Validated identifiers: service names, instance ids and instance addresses.
//!
//! Each type can only be built through its validation, so a value of the
//! type is proof that it is well-formed. They hold an `Arc<str>` because the
//! registry keeps each name in several indexes (the service map, the expiry
//! queue) and clones them on hot paths.

use super::error::{ErrorCode, WireError};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr, sync::Arc};

/// The naming rule as a regular expression (for the API's description;
/// [`check_name`] applies it without one).
#[cfg(feature = "openapi")]
const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,62}$";

/// Longest service name or instance id, in bytes.
pub const MAX_NAME_LEN: usize = 63;

/// Checks the naming rule shared by services and instance ids:
/// `^[a-z0-9][a-z0-9._-]{0,62}$`. Lower-case only, so that names are
/// unambiguous in URLs, etcd keys and metric labels.
fn check_name(kind: &str, raw: &str) -> Result<(), WireError> {
    let bad = |why: &str| {
        Err(WireError::new(
            ErrorCode::InvalidName,
            format!("{kind} {raw:?} {why}; names match ^[a-z0-9][a-z0-9._-]{{0,62}}$"),
        ))
    };
    let bytes = raw.as_bytes();
    match bytes.first() {
        None => return bad("is empty"),
        Some(b) if !(b.is_ascii_lowercase() || b.is_ascii_digit()) => {
            return bad("must start with a lower-case letter or a digit")
        }
        Some(_) => {}
    }
    if bytes.len() > MAX_NAME_LEN {
        return bad("is longer than 63 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("has a character other than a-z, 0-9, '.', '_' or '-'");
    }
    Ok(())
}

/// The naming rule as a JSON schema: a string matching it.
#[cfg(feature = "openapi")]
fn name_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(NAME_PATTERN))
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_LEN))
        .into()
}

/// Defines a validated name type. Services and instance ids follow the same
/// rule but are distinct types, so the two can't be swapped by mistake.
macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates `raw` against the naming rule.
            pub fn new(raw: &str) -> Result<Self, WireError> {
                check_name($kind, raw)?;
                Ok(Self(Arc::from(raw)))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                name_schema()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl FromStr for $name {
            type Err = WireError;
            fn from_str(raw: &str) -> Result<Self, WireError> {
                Self::new(raw)
            }
        }

        impl TryFrom<String> for $name {
            type Error = WireError;
            fn try_from(raw: String) -> Result<Self, WireError> {
                Self::new(&raw)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

validated_name!(
    /// A service name such as `ratings`.
    ServiceName,
    "service name"
);
validated_name!(
    /// An instance id, unique within its service, such as `ratings-2`.
    InstanceId,
    "instance id"
);
validated_name!(
    /// A shared lease's id, as the registry hands it out from
    /// `POST /v1/leases`: every instance registered on it lives while it does.
    LeaseId,
    "lease id"
);

/// Where an instance answers: an absolute `http` or `https` URL with an
/// explicit host and port, and no user-info, query or fragment (those would
/// be ambiguous when a client joins a request path onto the address).
/// A trailing `/` is dropped so that `address + "/path"` is always right.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address(Arc<str>);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Address {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^https?://\S+:[0-9]{1,5}$"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Address {}

impl Address {
    /// Validates and normalizes `raw`.
    pub fn new(raw: &str) -> Result<Self, WireError> {
        let bad = |why: &str| {
            Err(WireError::new(
                ErrorCode::InvalidAddress,
                format!("address {raw:?} {why}; expected e.g. \"http://127.0.0.1:8001\""),
            ))
        };
        if raw.len() > 2048 {
            return bad("is longer than 2048 bytes");
        }
        if raw.contains('#') {
            return bad("has a fragment");
        }
        if raw.contains('?') {
            return bad("has a query");
        }
        let Ok(uri) = raw.parse::<http::Uri>() else {
            return bad("is not a URL");
        };
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(_) => return bad("must use http or https"),
            None => return bad("is not absolute (no scheme)"),
        }
        let Some(authority) = uri.authority() else {
            return bad("has no host");
        };
        if authority.as_str().contains('@') {
            return bad("has user-info");
        }
        if authority.host().is_empty() {
            return bad("has no host");
        }
        match authority.port_u16() {
            None => return bad("has no port"),
            Some(0) => return bad("has port 0"),
            Some(_) => {}
        }
        Ok(Self(Arc::from(raw.trim_end_matches('/'))))
    }

    /// The address as text, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Address {
    type Err = WireError;
    fn from_str(raw: &str) -> Result<Self, WireError> {
        Self::new(raw)
    }
}

impl TryFrom<String> for Address {
    type Error = WireError;
    fn try_from(raw: String) -> Result<Self, WireError> {
        Self::new(&raw)
    }
}

impl From<Address> for String {
    fn from(address: Address) -> String {
        address.0.to_string()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for good in ["ratings", "r", "0", "ratings-1", "a.b_c-d", &"a".repeat(63)] {
            assert!(ServiceName::new(good).is_ok(), "{good} should be valid");
        }
        for bad in [
            "",
            "-x",
            ".x",
            "_x",
            "Ratings",
            "rat ings",
            "ratings/1",
            "é",
            &"a".repeat(64),
        ] {
            let err = InstanceId::new(bad).expect_err(bad);
            assert_eq!(err.code, ErrorCode::InvalidName, "{bad}");
        }
    }

    #[test]
    fn names_deserialize_through_validation() {
        let ok: ServiceName = serde_json::from_str("\"ratings\"").expect("valid");
        assert_eq!(ok.as_str(), "ratings");
        assert!(serde_json::from_str::<ServiceName>("\"Bad\"").is_err());
    }

    #[test]
    fn addresses_need_scheme_host_and_port() {
        for good in [
            "http://127.0.0.1:8001",
            "https://ratings.internal:443",
            "http://[::1]:8080",
            "http://127.0.0.1:8001/base",
        ] {
            assert!(Address::new(good).is_ok(), "{good} should be valid");
        }
        for bad in [
            "127.0.0.1:8001",
            "ftp://127.0.0.1:21",
            "http://127.0.0.1",
            "http://:80",
            "http://user:pw@127.0.0.1:80",
            "http://127.0.0.1:80/?q=1",
            "http://127.0.0.1:80/#top",
            "http://127.0.0.1:0",
            "http://127.0.0.1:99999",
            "not a url",
            "",
        ] {
            let err = Address::new(bad).expect_err(bad);
            assert_eq!(err.code, ErrorCode::InvalidAddress, "{bad}");
        }
    }

    #[test]
    fn trailing_slash_is_dropped() {
        let a = Address::new("http://127.0.0.1:8001/").expect("valid");
        assert_eq!(a.as_str(), "http://127.0.0.1:8001");
    }
}
