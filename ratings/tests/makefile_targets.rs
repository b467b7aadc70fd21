//! The Makefile's instance-control targets, driven as a person would, with
//! the registry checked after each step.

mod support;

use beacon::{wire::ServiceName, RegistryClient};
use std::{path::PathBuf, process::Command, time::Duration};
use support::{eventually, TestRegistry};

struct Make {
    run_dir: PathBuf,
    registry_url: String,
}

impl Make {
    /// Runs `make <target> VAR=...`, returning its stdout; fails the test if make fails.
    fn run(&self, target: &str, vars: &[&str]) -> String {
        let out = Command::new("make")
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
            // The workspace root, where the Makefile is.
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .output()
            .expect("run make");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "make {target} {vars:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
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
