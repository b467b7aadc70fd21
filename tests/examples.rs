//! The README's two examples as a user runs them: `greeter` instances and
//! the `greet` caller, real processes against a real registry.

use beacon_kit::process::Service;
use beacon_testkit::{example, TestRegistry};
use std::{
    process::{Command, Output},
    time::Duration,
};

/// `greet`, calling the greeter service through `registry`.
fn greet(registry: &str) -> Output {
    Command::new(example("greet"))
        .env("BEACON_REGISTRY", registry)
        .output()
        .expect("run greet")
}

/// The instances that answered, one per line of `greet`'s output.
fn answered_by(output: &Output) -> Vec<String> {
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn greeters_register_answer_and_leave_before_they_stop_serving() {
    let registry = TestRegistry::start(None).await;
    let env = [("BEACON_REGISTRY", registry.url.as_str())];
    let mut greeters = Vec::new();
    for id in ["greeter-1", "greeter-2"] {
        let greeter = Service::start_with_env(&example("greeter"), &[id], &env).expect("greeter");
        greeter
            .until_logged(&format!("{id} registered at"), Duration::from_secs(10))
            .await;
        greeters.push(greeter);
    }

    let calls = greet(&registry.url);
    assert!(calls.status.success(), "{calls:?}");
    let served = answered_by(&calls);
    assert_eq!(served.len(), 5, "{served:?}");
    assert!(
        served
            .iter()
            .all(|id| id == "greeter-1" || id == "greeter-2"),
        "{served:?}"
    );

    // SIGTERM: it deregisters, then drains and exits cleanly.
    let mut first = greeters.remove(0);
    first.signal("TERM");
    let status = first
        .wait(Duration::from_secs(10))
        .expect("greeter-1 exits");
    assert!(status.success(), "{status:?}");
    let listed = beacon_testkit::get_text(registry.at("/v1/services/greeter"))
        .await
        .expect("resolve");
    assert!(!listed.contains("greeter-1"), "still listed: {listed}");
    let calls = greet(&registry.url);
    assert!(calls.status.success(), "{calls:?}");
    assert_eq!(answered_by(&calls), vec!["greeter-2"; 5]);
}

#[tokio::test]
async fn a_caller_whose_registry_never_answers_says_so() {
    // A port nothing listens on: bound, then let go.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", unused.local_addr().expect("addr"));
    drop(unused);
    let calls = greet(&url);
    assert!(!calls.status.success());
    let error = String::from_utf8_lossy(&calls.stderr);
    assert!(
        error.contains("greet: no greeter instances known: no registry reachable"),
        "{error}"
    );
    assert!(error.contains(url.trim_start_matches("http://")), "{error}");
}
