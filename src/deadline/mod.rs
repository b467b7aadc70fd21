//! Deadlines that cross process boundaries.
//!
//! A caller that will wait 300 ms for an answer says so: every attempt a
//! [`ServiceClient`](crate::ServiceClient) sends carries
//! [`DEADLINE_HEADER`] (`beacon-deadline-ms`), the milliseconds that
//! attempt will be waited for (its attempt timeout, or less if the call's
//! deadline comes first), rounded up. A service that puts [`DeadlineLayer`]
//! in front of its handlers then knows what its caller's budget is:
//!
//! * a request whose budget is spent (`0`) is refused at once — 408 with
//!   the JSON error body, code `deadline_expired` — and reaches no handler;
//! * any other budget becomes the request's deadline ([`current`],
//!   [`remaining`]), and while the handler runs, every call it makes
//!   through a `ServiceClient` gets at most what is left of it: `min(own deadline, remaining)`. So a service called with
//!   300 ms left that spent 200 ms gives its own calls 100 ms, and one that
//!   spent all 300 makes none — no instance works on an answer nobody would
//!   wait for (grpc-java and Finagle carry deadlines the same way).
//!
//! The budget is relative (milliseconds left when it was sent), not a
//! point in time, so the two hosts' clocks need not agree; the time on the
//! wire counts as the receiver's. A missing header means "no budget
//! known": the handler's calls keep their own deadlines. A malformed one
//! is a 400 with code `invalid_deadline`.
//!
//! The remaining budget travels with the handler's task (a tokio task
//! local), so a task the handler spawns starts without one; read
//! [`current`] in the handler and pass it on if that task's calls should
//! keep to it too.

mod server;

pub(crate) use server::refusal;
pub use server::{DeadlineLayer, Deadlines};

use crate::wire::{ErrorCode, WireError};
use http::{header::HeaderName, HeaderValue};
use std::time::Duration;
use tokio::time::Instant;

/// The header that carries a request's budget: whole milliseconds, ASCII
/// digits, as the sender counted them just before sending.
pub const DEADLINE_HEADER: HeaderName = HeaderName::from_static("beacon-deadline-ms");

/// The longest budget taken as it is; a longer one is cut to this (a day:
/// past it, "no hurry" is all a budget says).
pub const MAX_BUDGET: Duration = Duration::from_secs(24 * 60 * 60);

tokio::task_local! {
    /// The deadline of the request the current task is serving.
    static DEADLINE: Instant;
}

/// The deadline of the request this task serves, if a [`DeadlineLayer`]
/// found one: when the request arrived plus the budget it carried, on
/// this host's clock. `None` outside a handler, or when the caller sent
/// none.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// What is left of [`current`] now (zero once passed).
pub fn remaining() -> Option<Duration> {
    current().map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// Runs `work` with its calls kept within `deadline` too (and within the
/// deadline already in force, if one is earlier): e.g. a page that must
/// render in 400 ms gives its calls no more.
pub async fn within<F: std::future::Future>(deadline: Instant, work: F) -> F::Output {
    let deadline = current().map_or(deadline, |current| current.min(deadline));
    DEADLINE.scope(deadline, work).await
}

/// The header value for a budget of `wait`: milliseconds, rounded up, so
/// that a budget of a fraction of a millisecond is not sent as spent.
pub fn header_value(wait: Duration) -> HeaderValue {
    HeaderValue::from(header_ms(wait))
}

/// `wait` in whole milliseconds, rounded up.
fn header_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// Most distinct budgets [`lasting_header_value`] keeps: attempt timeouts
/// come from configuration, so a process has a handful.
const MOST_LASTING: usize = 64;

/// [`header_value`] for a budget sent on many requests (a client's attempt
/// timeout): its bytes are made once per process and kept for good, so a
/// clone is a copy of a pointer. A value made by [`header_value`] counts
/// its clones in one shared word, which every attempt on every worker
/// thread would write twice per attempt.
/// Past [`MOST_LASTING`] distinct budgets, values are made as
/// [`header_value`] makes them.
pub(crate) fn lasting_header_value(wait: Duration) -> HeaderValue {
    static KEPT: std::sync::Mutex<Vec<(u64, HeaderValue)>> = std::sync::Mutex::new(Vec::new());
    let ms = header_ms(wait);
    let mut kept = KEPT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, value)) = kept.iter().find(|(kept, _)| *kept == ms) {
        return value.clone();
    }
    if kept.len() >= MOST_LASTING {
        return header_value(wait);
    }
    // Leaked on purpose, at most MOST_LASTING times: it lasts for good.
    let digits: &'static str = Box::leak(ms.to_string().into_boxed_str());
    let value = HeaderValue::from_static(digits);
    kept.push((ms, value.clone()));
    value
}

/// The budget `value` states, or why it can't be read.
pub fn parse_budget(value: &HeaderValue) -> Result<Duration, WireError> {
    let invalid = || {
        WireError::new(
            ErrorCode::InvalidDeadline,
            format!(
                "{DEADLINE_HEADER} must be whole milliseconds left (ASCII digits), not {value:?}"
            ),
        )
    };
    let digits = value.as_bytes();
    if digits.is_empty() {
        return Err(invalid());
    }
    // In one pass over the bytes (every request that carries a budget
    // comes through here); past u64's range is "no hurry".
    let mut ms: u64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return Err(invalid());
        }
        ms = ms.saturating_mul(10).saturating_add(u64::from(byte - b'0'));
    }
    Ok(Duration::from_millis(ms).min(MAX_BUDGET))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_round_up_to_whole_milliseconds() {
        for (wait, sent) in [
            (Duration::from_millis(300), "300"),
            (Duration::from_micros(99_300), "100"),
            (Duration::from_micros(1), "1"),
            (Duration::ZERO, "0"),
        ] {
            assert_eq!(header_value(wait), sent, "{wait:?}");
            assert_eq!(lasting_header_value(wait), sent, "{wait:?}");
        }
    }

    #[test]
    fn a_budget_is_ascii_digits_and_past_u64_is_a_day() {
        let parse = |bytes: &[u8]| parse_budget(&HeaderValue::from_bytes(bytes).expect("value"));
        assert!(parse(b"12\x80").is_err(), "a byte past ASCII");
        assert!(parse(b"1\t2").is_err(), "a tab");
        assert_eq!(parse(b"007").ok(), Some(Duration::from_millis(7)));
        let most = u64::MAX.to_string();
        assert_eq!(parse(most.as_bytes()).ok(), Some(MAX_BUDGET));
    }

    #[test]
    fn a_lasting_budget_is_made_once_and_shared() {
        let first = lasting_header_value(Duration::from_millis(250));
        // The same whole milliseconds: the same bytes, not a copy.
        let again = lasting_header_value(Duration::from_micros(249_001));
        assert_eq!(first, "250");
        assert_eq!(first.as_bytes().as_ptr(), again.as_bytes().as_ptr());
        let other = lasting_header_value(Duration::from_millis(251));
        assert_eq!(other, "251");
        assert_ne!(first.as_bytes().as_ptr(), other.as_bytes().as_ptr());
    }
}
