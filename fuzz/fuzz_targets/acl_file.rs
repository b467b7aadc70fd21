//! The registry's ACL file (`--acl`): any text is taken or refused with a
//! message; nothing panics. A file that parses grants nothing to a token
//! shorter than the minimum, nor to the empty token, and grants the same
//! when parsed again (nothing depends on hashing or order).
#![no_main]

use beacon_registry::acl::{Acl, MIN_TOKEN_LEN};
use beacon_wire::ServiceName;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let acl = match Acl::parse(text) {
        Ok(acl) => acl,
        Err(message) => {
            assert!(!message.is_empty(), "a refusal says why: {text:?}");
            return;
        }
    };
    assert!(acl.grant("").is_none(), "the empty token is never granted");
    let services: Vec<ServiceName> = ["ratings", "market", "batch-1", "a"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let again = Acl::parse(text).expect("it parsed once");
    for word in text.split(|c: char| c == '"' || c == '\'' || c.is_whitespace()) {
        let (Some(grant), Some(same)) = (acl.grant(word), again.grant(word)) else {
            assert!(again.grant(word).is_none(), "granted on one parse only: {word:?}");
            continue;
        };
        assert!(word.chars().count() >= MIN_TOKEN_LEN, "a short token was granted: {word:?}");
        for service in &services {
            assert_eq!(grant.may_write(service), same.may_write(service), "{word:?}");
        }
    }
});
