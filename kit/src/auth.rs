//! Bearer tokens: one check for every service that guards its writes.

use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;

/// Why a request's bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No `Authorization: Bearer …` header.
    #[error("this needs an `Authorization: Bearer <token>` header")]
    Missing,
    /// A token, but not the expected one.
    #[error("the bearer token is not this service's token")]
    Wrong,
}

/// Whether `headers` carry `Authorization: Bearer <expected>`. Compared in
/// constant time, so response timing doesn't leak the token.
pub fn check_bearer(headers: &HeaderMap, expected: &str) -> Result<(), BearerError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(BearerError::Missing)?;
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(BearerError::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().expect("header"));
        headers
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        assert_eq!(check_bearer(&with("Bearer s3cret"), "s3cret"), Ok(()));
        assert_eq!(
            check_bearer(&with("Bearer wrong"), "s3cret"),
            Err(BearerError::Wrong)
        );
        assert_eq!(
            check_bearer(&with("s3cret"), "s3cret"),
            Err(BearerError::Missing)
        );
        assert_eq!(
            check_bearer(&HeaderMap::new(), "s3cret"),
            Err(BearerError::Missing)
        );
    }
}
