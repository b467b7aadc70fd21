//! The Makefile's instance-control targets, driven as a person would, with
//! the registry checked after each step.

mod support;

use beacon::{wire::ServiceName, RegistryClient};
use std::{path::PathBuf, process::Command, time::Duration};
use support::{eventually, TestRegistry};

struct Make {
    run_dir: PathBuf,
    registry_url: String,
    /// More environment for make (e.g. `BEACON_TLS_CERT`).
    env: Vec<(&'static str, String)>,
}

impl Make {
    /// Runs `make <target> VAR=...`, returning its stdout; fails the test if make fails.
    fn run(&self, target: &str, vars: &[&str]) -> String {
        let out = self.output(target, vars);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "make {target} {vars:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    }

    /// Runs `make <target> VAR=...`, expecting it to fail; returns its stderr.
    fn refused(&self, target: &str, vars: &[&str]) -> String {
        let out = self.output(target, vars);
        assert!(!out.status.success(), "make {target} {vars:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn output(&self, target: &str, vars: &[&str]) -> std::process::Output {
        Command::new("make")
            .arg("-s")
            .arg(target)
            .args(vars)
            .arg(format!("RUN_DIR={}", self.run_dir.display()))
            .arg(format!(
                "RATINGS_BIN={}",
                support::binary("beacon-ratings").display()
            ))
            // Free ports and short leases keep the test quick and collision-free.
            .arg("RATINGS_ARGS=--port 0 --ttl-ms 1000")
            .env("BEACON_REGISTRY", &self.registry_url)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // The workspace root, where the Makefile is.
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .output()
            .expect("run make")
    }
}

async fn listed(registry: &RegistryClient) -> Vec<String> {
    let ratings: ServiceName = "ratings".parse().expect("valid");
    let answer = registry.resolve(&ratings).await.expect("resolve");
    answer.instances.iter().map(|i| i.id.to_string()).collect()
}

async fn until_listed(registry: &RegistryClient, ids: &[&str]) {
    eventually(
        Duration::from_secs(10),
        &format!("registry to list {ids:?}"),
        || async { (listed(registry).await == ids).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_pause_resume_and_stop_move_the_registry_as_they_say() {
    let registry = TestRegistry::start(None).await;
    let client = RegistryClient::from_list(&registry.url, None).expect("client");
    let run_dir = std::env::temp_dir().join(format!("beacon-make-{}", std::process::id()));
    let make = Make {
        run_dir: run_dir.clone(),
        registry_url: registry.url.clone(),
        env: Vec::new(),
    };

    let said = make.run("startRatings", &["COUNT=2"]);
    assert!(
        said.contains("started ratings-1") && said.contains("started ratings-2"),
        "{said}"
    );
    assert!(said.contains("log: "), "says where the log is: {said}");
    until_listed(&client, &["ratings-1", "ratings-2"]).await;
    assert!(run_dir.join("ratings-1.pid").exists() && run_dir.join("ratings-2.log").exists());

    // Starting one that runs already is refused, clearly.
    let again = Command::new("make")
        .args(["-s", "startRatings", "INSTANCE=2"])
        .arg(format!("RUN_DIR={}", run_dir.display()))
        .arg(format!(
            "RATINGS_BIN={}",
            support::binary("beacon-ratings").display()
        ))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("make");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("ratings-2 is already running"));

    // Paused past its 1 s lease, instance 1 drops out; resumed, it is back.
    assert!(make
        .run("pauseRatings", &["INSTANCE=1"])
        .contains("paused (SIGSTOP) ratings-1"));
    until_listed(&client, &["ratings-2"]).await;
    assert!(make
        .run("resumeRatings", &["INSTANCE=1"])
        .contains("resumed (SIGCONT) ratings-1"));
    until_listed(&client, &["ratings-1", "ratings-2"]).await;

    // Stop one, then (paused or not) all; stopping waits for exit.
    assert!(make
        .run("stopRatings", &["INSTANCE=1"])
        .contains("stopped ratings-1"));
    assert_eq!(
        listed(&client).await,
        ["ratings-2"],
        "deregistered before exit"
    );
    make.run("pauseRatings", &["INSTANCE=2"]);
    assert!(make.run("stopRatings", &[]).contains("stopped ratings-2"));
    assert!(listed(&client).await.is_empty());
    assert!(!run_dir.join("ratings-2.pid").exists());

    let _ = std::fs::remove_dir_all(&run_dir);
    registry.stop().await;
}

/// The faults instance `n` reports, at the address its log announced.
async fn faults_of(run_dir: &std::path::Path, n: u16) -> serde_json::Value {
    let log = std::fs::read_to_string(run_dir.join(format!("ratings-{n}.log"))).expect("log");
    let url = log
        .split_whitespace()
        .skip_while(|word| *word != "on")
        .nth(1)
        .expect("a listening line");
    let answer = reqwest::get(format!("{url}/_faults"))
        .await
        .expect("GET /_faults");
    answer.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_flaky_and_heal_change_a_running_instance() {
    let registry = TestRegistry::start(None).await;
    let client = RegistryClient::from_list(&registry.url, None).expect("client");
    let run_dir = std::env::temp_dir().join(format!("beacon-make-faults-{}", std::process::id()));
    let make = Make {
        run_dir: run_dir.clone(),
        registry_url: registry.url.clone(),
        env: Vec::new(),
    };
    make.run("startRatings", &["INSTANCE=1"]);
    until_listed(&client, &["ratings-1"]).await;

    let said = make.run("slowRatings", &["INSTANCE=1", "MS=120"]);
    assert!(said.contains("ratings-1 now answers 120 ms late"), "{said}");
    let faults = faults_of(&run_dir, 1).await;
    assert_eq!(
        (faults["delay_ms"].as_u64(), faults["fail_percent"].as_u64()),
        (Some(120), Some(0))
    );

    make.run("flakyRatings", &["INSTANCE=1", "PERCENT=30"]);
    let faults = faults_of(&run_dir, 1).await;
    assert_eq!(
        (faults["delay_ms"].as_u64(), faults["fail_percent"].as_u64()),
        (Some(0), Some(30))
    );

    let said = make.run("overloadRatings", &["INSTANCE=1", "CAPACITY=4"]);
    assert!(said.contains("4 at once"), "{said}");
    let faults = faults_of(&run_dir, 1).await;
    assert_eq!(
        (faults["capacity"].as_u64(), faults["delay_ms"].as_u64()),
        (Some(4), Some(5))
    );
    let refused = make.refused("overloadRatings", &["INSTANCE=1", "CAPACITY=lots"]);
    assert!(
        refused.contains("CAPACITY must be a whole number"),
        "{refused}"
    );
    let refused = make.refused("overloadRatings", &["INSTANCE=1", "CAPACITY=100001"]);
    assert!(
        refused.contains("refused the change (400)") && refused.contains("capacity 100001"),
        "{refused}"
    );
    make.run("flakyRatings", &["INSTANCE=1", "PERCENT=30"]);

    // Bad input is refused by name and changes nothing.
    let refused = make.refused("flakyRatings", &["INSTANCE=1", "PERCENT=101"]);
    assert!(
        refused.contains("refused the change (400)") && refused.contains("fail_percent 101"),
        "{refused}"
    );
    let refused = make.refused("slowRatings", &["INSTANCE=1", "MS=soon"]);
    assert!(refused.contains("MS must be a whole number"), "{refused}");
    let refused = make.refused("slowRatings", &["MS=100"]);
    assert!(refused.contains("needs INSTANCE"), "{refused}");
    let refused = make.refused("healRatings", &["INSTANCE=7"]);
    assert!(refused.contains("ratings-7 is not running"), "{refused}");
    assert_eq!(
        faults_of(&run_dir, 1).await["fail_percent"].as_u64(),
        Some(30)
    );

    make.run("healRatings", &["INSTANCE=1"]);
    let faults = faults_of(&run_dir, 1).await;
    assert_eq!(
        (faults["delay_ms"].as_u64(), faults["fail_percent"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        faults["capacity"].as_u64(),
        Some(0),
        "heal clears the capacity"
    );

    make.run("stopRatings", &[]);
    let _ = std::fs::remove_dir_all(&run_dir);
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_fault_targets_trust_the_demos_ca() {
    use beacon::net::tls::ClientTls;
    use beacon_kit::tls::ThrowawayPki;
    let registry = TestRegistry::start(None).await;
    let client = RegistryClient::from_list(&registry.url, None).expect("client");
    let run_dir = std::env::temp_dir().join(format!("beacon-make-tls-{}", std::process::id()));
    // Where `make demo TLS=1` puts them, so the targets find the CA alone.
    let pki = ThrowawayPki::generate(&run_dir.join("tls")).expect("certificates");
    let make = Make {
        run_dir: run_dir.clone(),
        registry_url: registry.url.clone(),
        env: vec![
            ("BEACON_TLS_CERT", pki.server_cert.display().to_string()),
            ("BEACON_TLS_KEY", pki.server_key.display().to_string()),
        ],
    };
    make.run("startRatings", &["INSTANCE=1"]);
    until_listed(&client, &["ratings-1"]).await;
    let said = make.run("slowRatings", &["INSTANCE=1", "MS=80"]);
    assert!(said.contains("ratings-1 now answers 80 ms late"), "{said}");

    // What the instance says, over HTTPS with the same CA.
    let log = std::fs::read_to_string(run_dir.join("ratings-1.log")).expect("log");
    let url = log
        .split_whitespace()
        .skip_while(|word| *word != "on")
        .nth(1)
        .expect("a listening line");
    assert!(url.starts_with("https://"), "{url}");
    let tls = ClientTls {
        ca: Some(pki.ca.clone()),
        identity: None,
    };
    let http =
        beacon::net::http::http_client_with(Duration::from_secs(1), tls.config().expect("tls"));
    let request = http::Request::get(format!("{url}/_faults"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let answer = http.request(request).await.expect("GET /_faults over TLS");
    let body = beacon::net::http::read_body(answer.into_body(), 1 << 16)
        .await
        .expect("body");
    let faults: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(faults["delay_ms"].as_u64(), Some(80));

    make.run("stopRatings", &[]);
    let _ = std::fs::remove_dir_all(&run_dir);
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_register_in_the_zones_the_run_directory_lists() {
    let registry = TestRegistry::start(None).await;
    let client = RegistryClient::from_list(&registry.url, None).expect("client");
    let run_dir = std::env::temp_dir().join(format!("beacon-make-zones-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir).expect("run dir");
    // What `make demo ZONES=1` writes: instance N registers in the Nth zone,
    // round again past the last.
    std::fs::write(run_dir.join("ratings.zones"), "a b\n").expect("zones file");
    let make = Make {
        run_dir: run_dir.clone(),
        registry_url: registry.url.clone(),
        env: Vec::new(),
    };
    make.run("startRatings", &["COUNT=3"]);
    until_listed(&client, &["ratings-1", "ratings-2", "ratings-3"]).await;
    let ratings: ServiceName = "ratings".parse().expect("valid");
    let answer = client.resolve(&ratings).await.expect("resolve");
    let zones: Vec<(String, Option<String>)> = answer
        .instances
        .iter()
        .map(|i| {
            (
                i.id.to_string(),
                i.metadata.get(beacon::wire::ZONE).cloned(),
            )
        })
        .collect();
    let zone = |z: &str| Some(z.to_owned());
    assert_eq!(
        zones,
        [
            ("ratings-1".to_owned(), zone("a")),
            ("ratings-2".to_owned(), zone("b")),
            ("ratings-3".to_owned(), zone("a")),
        ]
    );
    make.run("stopRatings", &[]);
    let _ = std::fs::remove_dir_all(&run_dir);
}
