//! Blocking-query parameters (`index`, `wait`): any pair is parsed, within
//! the wait limit, or refused as `invalid_query`; nothing panics.
#![no_main]

use beacon_wire::{ErrorCode, WatchQuery, MAX_WAIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // "index\nwait": either part may be missing.
    let mut parts = text.splitn(2, '\n');
    let index = parts.next().filter(|s| !s.is_empty());
    let wait = parts.next();
    match WatchQuery::parse(index, wait) {
        Ok(Some(query)) => assert!(query.wait <= MAX_WAIT),
        Ok(None) => assert!(index.is_none()),
        Err(error) => assert_eq!(error.code, ErrorCode::InvalidQuery),
    }
});
