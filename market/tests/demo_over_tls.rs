//! `make demo TLS=1` as a person runs it: the demo script with TLS on (the
//! debug binaries, so `make test` needs no release build), checked over
//! HTTPS with the throwaway CA it wrote, then stopped with ^C. The demo's
//! ports are fixed (8400, 8001–8003, 5000–5001): this is the one test that uses
//! them, with `make demo DCS=2`'s (demo_sites.rs).

mod support;

use support::{eventually, script::DemoScript};

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

/// `curl -s` with `args`, trusting `ca` if given.
fn curl(ca: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new("curl");
    command.args(["-s", "--max-time", "5"]);
    if let Some(ca) = ca {
        command.arg("--cacert").arg(ca);
    }
    command.args(args).output().expect("run curl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_demo_tls_serves_everything_over_https_and_stops_on_ctrl_c() {
    let run_dir: PathBuf =
        std::env::temp_dir().join(format!("beacon-demo-tls-{}", std::process::id()));
    let mut demo = DemoScript::start(&run_dir, &[("TLS", "1")]);
    let ca = run_dir.join("tls/ca.pem");

    // The market answers over HTTPS with live ratings from the instances.
    let things = eventually(Duration::from_secs(60), "live ratings over HTTPS", || {
        let out = curl(Some(&ca), &["https://127.0.0.1:5000/api/things"]);
        async move {
            let things: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let all_live = things
                .as_array()
                .filter(|t| !t.is_empty())?
                .iter()
                .all(|t| t["rating"]["source"] == "live");
            all_live.then_some(things)
        }
    })
    .await;
    assert!(things.as_array().is_some_and(|t| t.len() >= 4), "{things}");

    // The registry, over HTTPS too, wants a client certificate from every
    // caller, and lists three instances at https:// addresses.
    let tls = run_dir.join("tls");
    let (reader_cert, reader_key) = (tls.join("client.pem"), tls.join("client.key"));
    let as_reader = |args: &[&str]| {
        let mut all = vec![
            "--cert",
            reader_cert.to_str().expect("utf-8 path"),
            "--key",
            reader_key.to_str().expect("utf-8 path"),
        ];
        all.extend_from_slice(args);
        curl(Some(&ca), &all)
    };
    let anonymous = curl(Some(&ca), &["https://127.0.0.1:8400/v1/services/ratings"]);
    assert!(
        !anonymous.status.success() || anonymous.stdout.is_empty(),
        "no client certificate, no answer: {anonymous:?}"
    );
    let out = as_reader(&["https://127.0.0.1:8400/v1/services/ratings"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("registry JSON");
    let addresses: Vec<&str> = listed["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["address"].as_str())
        .collect();
    assert_eq!(addresses.len(), 3, "{listed}");
    assert!(
        addresses
            .iter()
            .all(|a| a.starts_with("https://127.0.0.1:")),
        "{addresses:?}"
    );

    // A certificate that names no service registers nothing (each ratings
    // instance registered with its own, naming ratings).
    let forged = as_reader(&[
        "-w",
        "\n%{http_code}",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "--data",
        r#"{"address":"https://127.0.0.1:9","ttl_ms":30000}"#,
        "https://127.0.0.1:8400/v1/services/ratings/instances/ratings-evil",
    ]);
    let answer = String::from_utf8_lossy(&forged.stdout);
    assert!(
        answer.ends_with("403") && answer.contains("forbidden"),
        "{answer}"
    );

    // Without the CA, a client refuses the server's certificate (curl exit 60).
    let untrusted = curl(None, &["https://127.0.0.1:5000/api/things"]);
    assert_eq!(untrusted.status.code(), Some(60), "{untrusted:?}");

    // The two market replicas share one store: a cart filled through one
    // is the cart the other shows.
    let cookie = "beacon_session=00112233445566778899aabbccddeeff";
    let added = curl(
        Some(&ca),
        &[
            "-X",
            "POST",
            "-b",
            cookie,
            "https://127.0.0.1:5000/api/cart/items/camera",
        ],
    );
    assert!(added.status.success(), "{added:?}");
    let out = curl(
        Some(&ca),
        &["-b", cookie, "https://127.0.0.1:5001/api/cart"],
    );
    let cart: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cart JSON");
    assert_eq!(cart["items"][0]["id"], "camera", "{cart}");

    // ^C stops everything it started: the ports are free again.
    assert!(demo.interrupt(), "the demo did not stop within 20 s of ^C");
    for port in [5000, 5001, 8400, 8001, 8002, 8003] {
        eventually(
            Duration::from_secs(5),
            &format!("port {port} to close"),
            || {
                let closed = std::net::TcpStream::connect(("127.0.0.1", port)).is_err();
                async move { closed.then_some(()) }
            },
        )
        .await;
    }
    let _ = std::fs::remove_dir_all(&run_dir);
}
