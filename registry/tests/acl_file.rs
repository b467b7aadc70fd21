//! The ACL file's parser, by property: any text is parsed or refused
//! (never a panic); a file made of valid entries is taken, and each token
//! may write exactly the services its patterns match.

use beacon_registry::acl::Acl;
use beacon_wire::ServiceName;
use proptest::prelude::*;

/// A pattern as a file would give it, and whether it is a prefix.
fn pattern() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        "[a-z0-9][a-z0-9._-]{0,20}".prop_map(|name| (name, false)),
        "[a-z0-9._-]{0,20}".prop_map(|prefix| (format!("{prefix}*"), true)),
    ]
}

fn matches((pattern, prefix): &(String, bool), service: &str) -> bool {
    if *prefix {
        service.starts_with(pattern.trim_end_matches('*'))
    } else {
        service == pattern
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_text_is_parsed_or_refused(text in "(?s).{0,400}") {
        let _ = Acl::parse(&text);
    }

    #[test]
    fn any_token_table_is_parsed_or_refused(
        token in ".{0,40}",
        services in proptest::collection::vec(".{0,20}", 0..4),
        admin in any::<bool>(),
    ) {
        let services: Vec<String> = services.iter().map(|s| format!("{s:?}")).collect();
        let text = format!(
            "[[tokens]]\ntoken = {token:?}\nservices = [{}]\nadmin = {admin}\n",
            services.join(", ")
        );
        if let Ok(acl) = Acl::parse(&text) {
            prop_assert_eq!(acl.len(), 1);
            prop_assert!(token.chars().count() >= 16);
        }
    }

    #[test]
    fn a_valid_file_grants_exactly_what_its_patterns_match(
        entries in proptest::collection::vec(
            ("[A-Za-z0-9]{16,24}", proptest::collection::vec(pattern(), 1..4)),
            1..5,
        ),
        services in proptest::collection::vec("[a-z0-9][a-z0-9._-]{0,20}", 1..8),
    ) {
        let mut text = String::new();
        let mut seen = std::collections::HashSet::new();
        let entries: Vec<_> = entries.into_iter().filter(|(t, _)| seen.insert(t.clone())).collect();
        for (token, patterns) in &entries {
            let list: Vec<String> = patterns.iter().map(|(p, _)| format!("{p:?}")).collect();
            text.push_str(&format!("[[tokens]]\ntoken = {token:?}\nservices = [{}]\n", list.join(", ")));
        }
        let acl = Acl::parse(&text).map_err(TestCaseError::fail)?;
        prop_assert_eq!(acl.len(), entries.len());
        for (token, patterns) in &entries {
            let grant = acl.grant(token).expect("its own token");
            for service in &services {
                let name: ServiceName = service.parse().expect("valid name");
                prop_assert_eq!(
                    grant.may_write(&name),
                    patterns.iter().any(|p| matches(p, service)),
                    "{} under {:?}", service, patterns
                );
            }
        }
    }
}
