//! The error body every 4xx/5xx answer of the registry carries.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Machine-readable error codes. Clients match on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body is not JSON, or not JSON of the expected shape.
    InvalidJson,
    /// A service name or instance id breaks the naming rule.
    InvalidName,
    /// The instance address is not an absolute `http`/`https` URL with host and port.
    InvalidAddress,
    /// `ttl_ms` is outside `1000..=3600000`.
    InvalidTtl,
    /// A query parameter (`index`, `wait`) could not be parsed or is out of range.
    InvalidQuery,
    /// A write came without the right bearer token.
    Unauthorized,
    /// The token may not make this write: a service outside its ACL
    /// entry.
    Forbidden,
    /// Heartbeat or deregistration of an instance the registry does not hold
    /// (never registered, or its lease expired): the caller re-registers.
    UnknownInstance,
    /// A keepalive, deletion or registration named a shared lease the
    /// registry does not hold (never granted, deleted, or run out): the
    /// caller grants a new one and registers on it again.
    UnknownLease,
    /// A registration gave both `ttl_ms` and `lease` (an instance lives by
    /// one or the other), or more metadata than
    /// [`MAX_METADATA_BYTES`](super::MAX_METADATA_BYTES).
    InvalidRegistration,
    /// A new instance past the registry's limits (`--max-instances`,
    /// `--max-per-service`): try later, or elsewhere.
    TooManyInstances,
    /// No such route.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The body is larger than [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES).
    PayloadTooLarge,
    /// A body was sent without `Content-Type: application/json`.
    UnsupportedMediaType,
    /// The backing store cannot be reached; reads may still answer.
    StoreUnavailable,
    /// A `beacon-deadline-ms` header that is not whole milliseconds.
    InvalidDeadline,
    /// The caller's budget (`beacon-deadline-ms`) was spent when the request
    /// arrived: it was not served.
    DeadlineExpired,
    /// The server is serving as much as it can at once and shed this
    /// request unserved (503 with `Retry-After`): the instance is full, not
    /// broken — try another.
    Overloaded,
    /// A bug on the registry's side.
    Internal,
    /// A code this version of the library does not know (sent by a newer registry).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status this code is answered with.
    pub fn status(self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Self::InvalidJson
            | Self::InvalidName
            | Self::InvalidAddress
            | Self::InvalidTtl
            | Self::InvalidQuery
            | Self::InvalidRegistration
            | Self::InvalidDeadline => S::BAD_REQUEST,
            Self::DeadlineExpired => S::REQUEST_TIMEOUT,
            Self::Unauthorized => S::UNAUTHORIZED,
            Self::Forbidden => S::FORBIDDEN,
            Self::UnknownInstance | Self::UnknownLease | Self::NotFound => S::NOT_FOUND,
            Self::MethodNotAllowed => S::METHOD_NOT_ALLOWED,
            Self::TooManyInstances => S::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge => S::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => S::UNSUPPORTED_MEDIA_TYPE,
            Self::StoreUnavailable | Self::Overloaded => S::SERVICE_UNAVAILABLE,
            Self::Internal | Self::Unknown => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code as it appears on the wire, e.g. `"invalid_ttl"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidName => "invalid_name",
            Self::InvalidAddress => "invalid_address",
            Self::InvalidTtl => "invalid_ttl",
            Self::InvalidQuery => "invalid_query",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::UnknownInstance => "unknown_instance",
            Self::UnknownLease => "unknown_lease",
            Self::InvalidRegistration => "invalid_registration",
            Self::TooManyInstances => "too_many_instances",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::StoreUnavailable => "store_unavailable",
            Self::InvalidDeadline => "invalid_deadline",
            Self::DeadlineExpired => "deadline_expired",
            Self::Overloaded => "overloaded",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected input or a failed call, with its code and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WireError {
    /// What kind of failure, for programs.
    pub code: ErrorCode,
    /// What exactly was wrong, for people; names the offending field or value.
    pub message: String,
}

impl WireError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The wire body for this error.
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
            },
        }
    }
}

/// The JSON body of every error answer: `{"error":{"code":..,"message":..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error itself (nested so that success and error bodies never look alike).
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// See [`ErrorCode`].
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

impl From<ErrorBody> for WireError {
    fn from(body: ErrorBody) -> Self {
        Self::new(body.error.code, body.error.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_tolerated() {
        let body = WireError::new(ErrorCode::InvalidTtl, "too short").to_body();
        let json = serde_json::to_string(&body).expect("serializes");
        assert_eq!(
            json,
            r#"{"error":{"code":"invalid_ttl","message":"too short"}}"#
        );
        let newer: ErrorBody =
            serde_json::from_str(r#"{"error":{"code":"from_the_future","message":"x"}}"#)
                .expect("unknown codes still parse");
        assert_eq!(newer.error.code, ErrorCode::Unknown);
    }

    #[test]
    fn as_str_matches_serde() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::StoreUnavailable,
            ErrorCode::UnknownInstance,
            ErrorCode::UnknownLease,
            ErrorCode::InvalidRegistration,
            ErrorCode::Forbidden,
            ErrorCode::TooManyInstances,
            ErrorCode::Overloaded,
        ] {
            let json = serde_json::to_string(&code).expect("serializes");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
