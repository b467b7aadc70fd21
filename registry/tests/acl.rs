//! `--acl`: tokens scoped to services, on the real binary. A token writes
//! only the services its entry names (403 `forbidden` elsewhere, with an
//! audit line and a counter); an unknown token is 401; reads stay open; a
//! SIGHUP loads the file again (a broken file leaves the old ACL in
//! force); a bad file stops the registry at start with a message naming
//! the entry.

use beacon_kit::process::Service;
use serde_json::{json, Value};
use std::{path::Path, process::Command, time::Duration};

const BIN: &str = env!("CARGO_BIN_EXE_beacon-registry");
const TEAM: &str = "ratings-team-secret-0001";
const ADMIN: &str = "operators-secret-000001";
const LATER: &str = "market-team-secret-00001";
const ROGUE: &str = "another-ratings-secret-1";

const ACL: &str = r#"
[[tokens]]
token = "ratings-team-secret-0001"
services = ["ratings", "batch-*"]

[[tokens]]
token = "operators-secret-000001"
admin = true

[[tokens]]
token = "another-ratings-secret-1"
services = ["ratings"]
"#;

struct Registry {
    process: Service,
    http: reqwest::Client,
    dir: std::path::PathBuf,
}

impl Registry {
    fn start(acl: &str) -> Self {
        Self::start_with(acl, &[])
    }

    /// A registry with `acl`, and `args` besides.
    fn start_with(acl: &str, args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "beacon-acl-test-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("acl.toml");
        std::fs::write(&path, acl).expect("write");
        let mut all = vec![
            "--listen",
            "127.0.0.1:0",
            "--acl",
            path.to_str().expect("utf-8"),
        ];
        all.extend_from_slice(args);
        let process = Service::start(Path::new(BIN), &all).expect("beacon-registry starts");
        Self {
            process,
            http: reqwest::Client::new(),
            dir,
        }
    }

    /// Registers `service/id` with `token` (if any): the status and body.
    async fn register(&self, token: Option<&str>, service: &str, id: &str) -> (u16, Value) {
        let url = format!("{}/v1/services/{service}/instances/{id}", self.process.url);
        let mut request = self
            .http
            .put(url)
            .json(&json!({"address": "http://127.0.0.1:8001"}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await.expect("answered");
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    /// The status of registering `service/id` with `token`.
    async fn registered(&self, token: &str, service: &str, id: &str) -> u16 {
        self.register(Some(token), service, id).await.0
    }

    async fn delete(&self, token: &str, service: &str, id: &str) -> u16 {
        let url = format!("{}/v1/services/{service}/instances/{id}", self.process.url);
        let answer = self.http.delete(url).bearer_auth(token).send().await;
        answer.expect("answered").status().as_u16()
    }

    async fn heartbeat(&self, token: &str, service: &str, id: &str) -> u16 {
        let url = format!(
            "{}/v1/services/{service}/instances/{id}/heartbeat",
            self.process.url
        );
        let answer = self.http.put(url).bearer_auth(token).send().await;
        answer.expect("answered").status().as_u16()
    }

    async fn refused_count(&self) -> u64 {
        let metrics = beacon_testkit::get_text(format!("{}/_metrics", self.process.url))
            .await
            .expect("metrics");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("beacon_registry_writes_refused_total "))
            .and_then(|v| v.trim().parse().ok())
            .expect("a refusals counter")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    rand::random()
}

#[tokio::test]
async fn a_token_writes_only_its_services_and_every_refusal_is_audited() {
    let registry = Registry::start(ACL);
    assert_eq!(registry.registered(TEAM, "ratings", "ratings-1").await, 201);
    assert_eq!(registry.registered(TEAM, "batch-7", "job-1").await, 201);
    assert_eq!(registry.registered(ADMIN, "market", "market-1").await, 201);

    let (status, body) = registry.register(Some(TEAM), "market", "rogue-1").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(registry.delete(TEAM, "market", "market-1").await, 403);
    let (status, body) = registry
        .register(Some("not-a-token-of-the-file"), "ratings", "r")
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(registry.register(None, "ratings", "r").await.0, 401);
    assert_eq!(registry.refused_count().await, 4);
    // The log is read from the process's output as it comes.
    beacon_testkit::eventually(Duration::from_secs(5), "four audit lines", || {
        let lines = registry.process.output().matches("write refused").count();
        async move { (lines == 4).then_some(()) }
    })
    .await;
    let log = registry.process.output();
    let audit: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("write refused"))
        .collect();
    assert_eq!(audit.len(), 4, "{log}");
    assert!(
        audit
            .iter()
            .all(|l| !l.contains(TEAM) && !l.contains(ADMIN)),
        "no token in the log: {audit:?}"
    );
    assert!(audit[0].contains("market"), "{}", audit[0]);

    // Reads stay open; the rogue write changed nothing.
    let listed: Value = reqwest::get(format!("{}/v1/services/market", registry.process.url))
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = listed["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, ["market-1"]);
    // The admin token writes anything.
    assert_eq!(registry.delete(ADMIN, "batch-7", "job-1").await, 204);
}

#[tokio::test]
async fn an_instance_is_renewed_replaced_and_removed_only_by_its_own_token() {
    let registry = Registry::start(ACL);
    assert_eq!(registry.registered(TEAM, "ratings", "ratings-1").await, 201);
    // Another token that may write the service still can't take this one
    // over, renew it or remove it.
    let (status, body) = registry.register(Some(ROGUE), "ratings", "ratings-1").await;
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("another token")),
        "{body}"
    );
    assert_eq!(registry.heartbeat(ROGUE, "ratings", "ratings-1").await, 403);
    assert_eq!(registry.delete(ROGUE, "ratings", "ratings-1").await, 403);
    // Its own instances are its own.
    assert_eq!(
        registry.registered(ROGUE, "ratings", "ratings-9").await,
        201
    );
    assert_eq!(registry.heartbeat(ROGUE, "ratings", "ratings-9").await, 200);
    // The owner goes on; an admin may act on anyone's.
    assert_eq!(registry.heartbeat(TEAM, "ratings", "ratings-1").await, 200);
    assert_eq!(registry.registered(TEAM, "ratings", "ratings-1").await, 200);
    assert_eq!(registry.delete(ADMIN, "ratings", "ratings-9").await, 204);
    assert_eq!(registry.refused_count().await, 3);
}

#[tokio::test]
async fn a_shared_lease_is_kept_ended_and_joined_only_by_its_own_token() {
    let registry = Registry::start(ACL);
    let url = &registry.process.url;
    let http = &registry.http;
    let granted: Value = http
        .post(format!("{url}/v1/leases"))
        .bearer_auth(TEAM)
        .json(&json!({"ttl_ms": 60_000}))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    let lease = granted["lease"].as_str().expect("a lease id").to_owned();
    let keepalive = |token: &'static str| {
        let request = http
            .put(format!("{url}/v1/leases/{lease}/keepalive"))
            .bearer_auth(token);
        async move { request.send().await.expect("answered").status().as_u16() }
    };
    assert_eq!(keepalive(ROGUE).await, 403);
    let end = |token: &'static str| {
        let request = http
            .delete(format!("{url}/v1/leases/{lease}"))
            .bearer_auth(token);
        async move { request.send().await.expect("answered").status().as_u16() }
    };
    assert_eq!(end(ROGUE).await, 403);
    let join = |token: &'static str, id: &'static str| {
        let request = http
            .put(format!("{url}/v1/services/ratings/instances/{id}"))
            .bearer_auth(token)
            .json(&json!({"address": "http://127.0.0.1:8001", "lease": lease}));
        async move { request.send().await.expect("answered").status().as_u16() }
    };
    assert_eq!(
        join(ROGUE, "rogue-1").await,
        403,
        "no joining another's lease"
    );
    assert_eq!(join(TEAM, "ratings-1").await, 201);
    assert_eq!(keepalive(TEAM).await, 200);
    assert_eq!(end(ADMIN).await, 204);
    assert_eq!(registry.refused_count().await, 3);
}

#[tokio::test]
async fn sighup_loads_the_file_again_and_a_broken_file_changes_nothing() {
    let registry = Registry::start(ACL);
    let path = registry.dir.join("acl.toml");
    assert_eq!(registry.registered(LATER, "market", "m-1").await, 401);

    let grown = format!("{ACL}\n[[tokens]]\ntoken = \"{LATER}\"\nservices = [\"market\"]\n");
    std::fs::write(&path, grown).expect("write");
    hang_up(&registry.process);
    registry
        .process
        .until_logged("ACL reloaded", Duration::from_secs(10))
        .await;
    assert_eq!(registry.registered(LATER, "market", "m-1").await, 201);

    std::fs::write(&path, "[[tokens]]\ntoken = \"short\"\nadmin = true\n").expect("write");
    hang_up(&registry.process);
    registry
        .process
        .until_logged("ACL not reloaded", Duration::from_secs(10))
        .await;
    assert_eq!(
        registry.register(Some(LATER), "market", "m-2").await.0,
        201,
        "the ACL in force stays"
    );
}

/// Two replicas on one etcd: what one token registered on one replica,
/// another token can't renew or remove on the other.
#[cfg(feature = "etcd-tests")]
#[tokio::test]
async fn every_replica_refuses_another_token_s_renewal() {
    let urls = beacon_testkit::etcd::shared_urls().join(",");
    let prefix = beacon_testkit::etcd::fresh_prefix();
    let args = ["--store", "etcd", "--etcd", &urls, "--etcd-prefix", &prefix];
    let (one, two) = (
        Registry::start_with(ACL, &args),
        Registry::start_with(ACL, &args),
    );
    assert_eq!(one.registered(TEAM, "ratings", "ratings-1").await, 201);
    beacon_testkit::eventually(
        Duration::from_secs(10),
        "the other replica to see it",
        || {
            let url = format!("{}/v1/services/ratings", two.process.url);
            async move {
                let listed: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
                (listed["instances"].as_array()?.len() == 1).then_some(())
            }
        },
    )
    .await;
    assert_eq!(two.heartbeat(ROGUE, "ratings", "ratings-1").await, 403);
    assert_eq!(two.delete(ROGUE, "ratings", "ratings-1").await, 403);
    assert_eq!(two.heartbeat(TEAM, "ratings", "ratings-1").await, 200);
}

fn hang_up(process: &Service) {
    let status = Command::new("kill")
        .args(["-HUP", &process.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[test]
fn a_bad_acl_file_stops_the_registry_with_the_entry_named() {
    let dir = std::env::temp_dir().join(format!("beacon-acl-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("acl.toml");
    std::fs::write(
        &path,
        "[[tokens]]\ntoken = \"aaaaaaaaaaaaaaaa\"\nservices = [\"Bad Name\"]\n",
    )
    .expect("write");
    let output = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--acl",
            path.to_str().expect("utf-8"),
        ])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("token 1 of the file") && stderr.contains("Bad Name"),
        "{stderr}"
    );
    let missing = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--acl", "/nonexistent/acl.toml"])
        .output()
        .expect("runs");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/acl.toml"));
    std::fs::remove_dir_all(&dir).expect("clean up");
}
