//! Properties of the registry API's parsers, checked on generated inputs
//! (proptest): every valid input is taken exactly, every other one is
//! refused with the right code, and nothing panics. The same parsers are
//! fuzzed by `make fuzz` (fuzz/).

use beacon_wire::{
    format_wait, Address, ErrorCode, InstanceId, RegisterRequest, ServiceName, WatchQuery,
};
use proptest::prelude::*;
use std::time::Duration;

/// The naming rule, written out independently of the parser.
fn follows_the_naming_rule(name: &str) -> bool {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first_ok
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn valid_names_are_taken_as_they_are(name in "[a-z0-9][a-z0-9._-]{0,62}") {
        let service = ServiceName::new(&name).expect("valid");
        prop_assert_eq!(service.as_str(), name.as_str());
        let id = InstanceId::new(&name).expect("valid");
        prop_assert_eq!(id.as_str(), name.as_str());
    }

    #[test]
    fn any_text_is_a_name_exactly_when_it_follows_the_rule(name in ".{0,80}") {
        match ServiceName::new(&name) {
            Ok(service) => {
                prop_assert!(follows_the_naming_rule(&name), "{name:?} taken");
                prop_assert_eq!(service.as_str(), name.as_str());
            }
            Err(error) => {
                prop_assert!(!follows_the_naming_rule(&name), "{name:?} refused");
                prop_assert_eq!(error.code, ErrorCode::InvalidName);
            }
        }
    }

    #[test]
    fn addresses_with_scheme_host_and_port_are_taken(
        https in any::<bool>(),
        host in "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,20}){0,3}",
        port in 1u16..,
        slash in any::<bool>(),
    ) {
        let scheme = if https { "https" } else { "http" };
        let raw = format!("{scheme}://{host}:{port}{}", if slash { "/" } else { "" });
        let address = Address::new(&raw).expect("valid");
        prop_assert_eq!(address.to_string(), format!("{scheme}://{host}:{port}"));
    }

    #[test]
    fn any_text_as_an_address_is_taken_or_refused_as_invalid_address(raw in ".{0,120}") {
        if let Err(error) = Address::new(&raw) {
            prop_assert_eq!(error.code, ErrorCode::InvalidAddress);
        }
    }

    #[test]
    fn addresses_with_a_query_fragment_or_no_port_are_refused(
        host in "[a-z]{1,10}",
        tail in prop_oneof![Just("?a=1"), Just("#top"), Just("")],
        port in prop_oneof![Just(String::new()), (1u16..).prop_map(|p| format!(":{p}"))],
    ) {
        // Only the combinations with something wrong: a query, a fragment, or
        // no port.
        prop_assume!(!tail.is_empty() || port.is_empty());
        let raw = format!("http://{host}{port}{tail}");
        let error = Address::new(&raw).expect_err(&raw);
        prop_assert_eq!(error.code, ErrorCode::InvalidAddress);
    }

    #[test]
    fn ttls_in_range_are_taken_and_others_refused(ms in 0u64..10_000_000, float in any::<bool>()) {
        let ttl = if float { format!("{ms}.0") } else { ms.to_string() };
        let json = format!(r#"{{"address":"http://127.0.0.1:8001","ttl_ms":{ttl}}}"#);
        let request: RegisterRequest = serde_json::from_str(&json).expect("a register request");
        match request.validate() {
            Ok(registration) => {
                prop_assert!((1000..=3_600_000).contains(&ms), "{ttl} taken");
                prop_assert_eq!(registration.ttl, Duration::from_millis(ms));
            }
            Err(error) => {
                prop_assert!(!(1000..=3_600_000).contains(&ms), "{ttl} refused");
                prop_assert_eq!(error.code, ErrorCode::InvalidTtl);
            }
        }
    }

    #[test]
    fn any_json_as_a_register_request_is_taken_or_refused_without_panic(body in any::<Vec<u8>>()) {
        if let Ok(request) = serde_json::from_slice::<RegisterRequest>(&body) {
            let _ = request.validate();
        }
    }

    #[test]
    fn waits_within_the_limit_round_trip(ms in 0u64..=60_000, index in 0u64..=i64::MAX as u64) {
        let wait = format_wait(Duration::from_millis(ms));
        let query = WatchQuery::parse(Some(&index.to_string()), Some(&wait))
            .expect("valid")
            .expect("a blocking query");
        prop_assert_eq!(query, WatchQuery { index, wait: Duration::from_millis(ms) });
        let written = query.to_query_string();
        let wait_again = written.split("wait=").nth(1).unwrap_or_default();
        let again = WatchQuery::parse(Some(&index.to_string()), Some(wait_again))
            .expect("valid")
            .expect("a blocking query");
        prop_assert_eq!(again, query);
    }

    #[test]
    fn any_query_is_parsed_or_refused_as_invalid_query(index in proptest::option::of(".{0,25}"), wait in proptest::option::of(".{0,12}")) {
        match WatchQuery::parse(index.as_deref(), wait.as_deref()) {
            Ok(Some(query)) => prop_assert!(query.wait <= Duration::from_secs(60)),
            Ok(None) => prop_assert!(index.is_none()),
            Err(error) => prop_assert_eq!(error.code, ErrorCode::InvalidQuery),
        }
    }
}
