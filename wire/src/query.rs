//! Blocking-query parameters: `?index=N&wait=D`.

use super::body::duration_ms;
use super::error::{ErrorCode, WireError};
use super::names::LeaseId;
use std::time::Duration;

/// How long a blocking query waits when it names no `wait`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The longest `wait` allowed: long enough to make polling cheap, short
/// enough that proxies and load balancers in between don't cut it.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// A parsed blocking query: answer once the service's index is no longer
/// `index`, or after `wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchQuery {
    /// The index the caller already has.
    pub index: u64,
    /// How long to wait for a change at most.
    pub wait: Duration,
}

impl WatchQuery {
    /// Parses the raw `index` and `wait` parameters. `Ok(None)` when there is
    /// no `index` (a plain read); a `wait` without `index` has nothing to
    /// wait for, but must still be a valid wait (a typo is a 400, not a
    /// silent plain read).
    pub fn parse(index: Option<&str>, wait: Option<&str>) -> Result<Option<Self>, WireError> {
        let wait = wait.map(parse_wait).transpose()?;
        let Some(index) = index else {
            return Ok(None);
        };
        // Indexes are etcd revisions or milliseconds since 1970: both fit
        // in a signed 64-bit integer, the widest that JSON tools agree on.
        let index = index
            .parse::<u64>()
            .ok()
            .filter(|i| i64::try_from(*i).is_ok())
            .ok_or_else(|| {
                WireError::new(
                    ErrorCode::InvalidQuery,
                    format!("index {index:?} is not a whole number in 0..=9223372036854775807"),
                )
            })?;
        Ok(Some(Self {
            index,
            wait: wait.unwrap_or(DEFAULT_WAIT),
        }))
    }

    /// The query string for this query, e.g. `index=42&wait=30s`.
    pub fn to_query_string(&self) -> String {
        format!("index={}&wait={}", self.index, format_wait(self.wait))
    }
}

/// The shortest quiet between two lines of a stream of changes: a shorter
/// `wait` counts as this, so a stream never spins.
pub const MIN_STREAM_WAIT: Duration = Duration::from_secs(1);

/// A parsed `stream=true[&index=N][&wait=D]`: the changes feed as one long
/// answer, a line per change from `index` on (a snapshot first without
/// it), and a line with no changes after `wait` of quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamQuery {
    /// The index the caller already has; `None` for a snapshot first.
    pub index: Option<u64>,
    /// Longest quiet between two lines, at least [`MIN_STREAM_WAIT`].
    pub wait: Duration,
}

impl StreamQuery {
    /// Parses the raw `stream`, `index` and `wait` parameters: `Ok(None)`
    /// when `stream` is absent or `false`.
    pub fn parse(
        stream: Option<&str>,
        index: Option<&str>,
        wait: Option<&str>,
    ) -> Result<Option<Self>, WireError> {
        let query = WatchQuery::parse(index, wait)?;
        match stream {
            None | Some("false") => Ok(None),
            Some("true") => {
                let wait = wait.map(parse_wait).transpose()?.unwrap_or(DEFAULT_WAIT);
                Ok(Some(Self {
                    index: query.map(|q| q.index),
                    wait: wait.max(MIN_STREAM_WAIT),
                }))
            }
            Some(other) => Err(WireError::new(
                ErrorCode::InvalidQuery,
                format!("stream {other:?} is neither true nor false"),
            )),
        }
    }

    /// The query string for this query, e.g. `stream=true&index=42&wait=30000ms`.
    pub fn to_query_string(&self) -> String {
        let wait = format_wait(self.wait);
        match self.index {
            Some(index) => format!("stream=true&index={index}&wait={wait}"),
            None => format!("stream=true&wait={wait}"),
        }
    }
}

/// A heartbeat's `?registered_at=MS`: which registration it renews (the
/// `registered_at` its registration was answered with). When the instance
/// was registered again since — by someone else, at another address — the
/// heartbeat is answered 404 `unknown_instance`, so its sender registers
/// its own again instead of keeping the other alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeartbeatQuery {
    /// The registration renewed; `None`: whichever is there (old clients).
    pub registered_at: Option<u64>,
}

impl HeartbeatQuery {
    /// Parses the raw `registered_at` parameter.
    pub fn parse(registered_at: Option<&str>) -> Result<Self, WireError> {
        let registered_at = registered_at
            .map(|raw| {
                raw.parse::<u64>().map_err(|_| {
                    WireError::new(
                        ErrorCode::InvalidQuery,
                        format!("registered_at {raw:?} is not a whole number of milliseconds"),
                    )
                })
            })
            .transpose()?;
        Ok(Self { registered_at })
    }

    /// The query string, e.g. `registered_at=1700000000000` (empty for
    /// none).
    pub fn to_query_string(&self) -> String {
        self.registered_at
            .map(|at| format!("registered_at={at}"))
            .unwrap_or_default()
    }
}

/// Largest subset a client may ask for.
pub const MAX_SUBSET: usize = 1000;

/// A parsed `subset=K&client=<lease>`: the client (named by its lease,
/// which the registry ranks it by) wants a subset of K instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsetQuery {
    /// How many instances (K).
    pub size: usize,
    /// The asking client's lease.
    pub client: LeaseId,
}

impl SubsetQuery {
    /// Parses the raw `subset` and `client` parameters: both or neither.
    pub fn parse(subset: Option<&str>, client: Option<&str>) -> Result<Option<Self>, WireError> {
        let bad = |message: String| WireError::new(ErrorCode::InvalidQuery, message);
        match (subset, client) {
            (None, None) => Ok(None),
            (Some(size), Some(client)) => {
                let size = size
                    .parse::<usize>()
                    .ok()
                    .filter(|k| (1..=MAX_SUBSET).contains(k))
                    .ok_or_else(|| {
                        bad(format!(
                            "subset {size:?} is not a whole number in 1..={MAX_SUBSET}"
                        ))
                    })?;
                let client = client
                    .parse()
                    .map_err(|e: WireError| bad(format!("client: {}", e.message)))?;
                Ok(Some(Self { size, client }))
            }
            _ => Err(bad(
                "subset and client go together: subset=K&client=<your lease>".into(),
            )),
        }
    }

    /// The query string for this query, e.g. `subset=8&client=00ff`.
    pub fn to_query_string(&self) -> String {
        format!("subset={}&client={}", self.size, self.client)
    }
}

/// Parses a wait such as `250ms`, `30s` or `1m` (whole numbers, at most
/// [`MAX_WAIT`]).
fn parse_wait(raw: &str) -> Result<Duration, WireError> {
    let bad = |why: &str| {
        Err(WireError::new(
            ErrorCode::InvalidQuery,
            format!("wait {raw:?} {why}; expected e.g. 250ms, 30s or 1m, at most 60s"),
        ))
    };
    let digits_end = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(digits_end);
    let Ok(number) = number.parse::<u64>() else {
        return bad("does not start with a whole number");
    };
    let wait = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        _ => return bad("has no unit of ms, s or m"),
    };
    if wait > MAX_WAIT {
        return bad("is longer than the limit");
    }
    Ok(wait)
}

/// Formats a wait the way [`WatchQuery::parse`] reads it.
pub fn format_wait(wait: Duration) -> String {
    format!("{}ms", duration_ms(wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(index: Option<&str>, wait: Option<&str>) -> Result<Option<WatchQuery>, WireError> {
        WatchQuery::parse(index, wait)
    }

    #[test]
    fn a_stream_query_reads_back_what_it_writes() {
        for query in [
            StreamQuery {
                index: Some(42),
                wait: Duration::from_secs(5),
            },
            StreamQuery {
                index: None,
                wait: DEFAULT_WAIT,
            },
        ] {
            let raw: std::collections::HashMap<&str, &str> = query
                .to_query_string()
                .leak()
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .collect();
            let parsed = StreamQuery::parse(
                raw.get("stream").copied(),
                raw.get("index").copied(),
                raw.get("wait").copied(),
            );
            assert_eq!(parsed, Ok(Some(query)));
        }
    }

    #[test]
    fn a_stream_never_waits_less_than_its_floor_and_says_yes_or_no() {
        let quick = StreamQuery::parse(Some("true"), Some("3"), Some("0ms"));
        assert_eq!(quick.expect("valid").expect("some").wait, MIN_STREAM_WAIT);
        assert_eq!(StreamQuery::parse(Some("false"), Some("3"), None), Ok(None));
        assert_eq!(StreamQuery::parse(None, None, None), Ok(None));
        let error = StreamQuery::parse(Some("yes"), None, None).expect_err("not a bool");
        assert_eq!(error.code, ErrorCode::InvalidQuery);
        let error = StreamQuery::parse(Some("true"), Some("x"), None).expect_err("bad index");
        assert_eq!(error.code, ErrorCode::InvalidQuery);
    }

    #[test]
    fn plain_reads_have_no_query() {
        assert_eq!(parse(None, Some("5s")), Ok(None));
        assert_eq!(parse(None, None), Ok(None));
    }

    #[test]
    fn a_bad_wait_is_invalid_even_without_an_index() {
        for wait in ["forever", "-1s", "61s", ""] {
            let error = parse(None, Some(wait)).expect_err(wait);
            assert_eq!(error.code, ErrorCode::InvalidQuery, "{wait}");
        }
    }

    #[test]
    fn waits_parse_in_every_unit() {
        let q = |w| {
            parse(Some("7"), Some(w))
                .expect("valid")
                .expect("some")
                .wait
        };
        assert_eq!(q("250ms"), Duration::from_millis(250));
        assert_eq!(q("30s"), Duration::from_secs(30));
        assert_eq!(q("1m"), Duration::from_secs(60));
        assert_eq!(q("0s"), Duration::ZERO);
        let default = parse(Some("7"), None).expect("valid").expect("some");
        assert_eq!(
            default,
            WatchQuery {
                index: 7,
                wait: DEFAULT_WAIT
            }
        );
    }

    #[test]
    fn bad_values_are_invalid_query() {
        for (index, wait) in [
            ("-1", None),
            ("x", None),
            ("18446744073709551616", None),
            ("9223372036854775808", None),
            ("1", Some("61s")),
            ("1", Some("2m")),
            ("1", Some("5")),
            ("1", Some("-5s")),
            ("1", Some("1.5s")),
            ("1", Some("5h")),
            ("1", Some("")),
            ("1", Some("99999999999999999999999m")),
        ] {
            let err = parse(Some(index), wait).expect_err(&format!("{index} {wait:?}"));
            assert_eq!(err.code, ErrorCode::InvalidQuery);
        }
    }

    #[test]
    fn formatted_waits_parse_back() {
        let q = WatchQuery {
            index: 3,
            wait: Duration::from_millis(1500),
        };
        assert_eq!(q.to_query_string(), "index=3&wait=1500ms");
        assert_eq!(parse(Some("3"), Some("1500ms")), Ok(Some(q)));
    }
}

#[cfg(test)]
mod subset_tests {
    use super::*;

    #[test]
    fn a_subset_query_needs_both_parts_and_a_size_in_range() {
        assert_eq!(SubsetQuery::parse(None, None), Ok(None));
        let query = SubsetQuery::parse(Some("8"), Some("00ff")).expect("valid");
        assert_eq!(query.as_ref().map(|q| q.size), Some(8));
        assert_eq!(
            query.map(|q| q.to_query_string()).as_deref(),
            Some("subset=8&client=00ff")
        );
        for (subset, client) in [
            (Some("8"), None),
            (None, Some("00ff")),
            (Some("0"), Some("00ff")),
            (Some("1001"), Some("00ff")),
            (Some("eight"), Some("00ff")),
            (Some("8"), Some("Not-A-Lease")),
        ] {
            let error = SubsetQuery::parse(subset, client).expect_err("refused");
            assert_eq!(error.code, ErrorCode::InvalidQuery, "{subset:?} {client:?}");
        }
    }
}
