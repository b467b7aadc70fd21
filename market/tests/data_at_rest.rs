//! Customers' data at rest, on both real stores: with `--data-key`, no
//! name, email or address is readable in the SQLite files or a `pg_dump`
//! (history included); support finds a customer by email through the
//! blind index; `rotate-key` reseals everything with a new key, after which
//! the old key can be dropped and a market without the right key refuses
//! with a clear code instead of serving garbage. SQLite files are 0600.

mod support;

use beacon_kit::process::Service;
use reqwest::{header, Client, StatusCode};
use serde_json::{json, Value};
use std::{os::unix::fs::PermissionsExt, process::Command};
use support::{binary, json_of, stores::TestDb, stores::SECRET};

const ADMIN: &str = "support-token-0123456789";
const OWNER: &str = "beacon_session=0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a";
const OLD_KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const NEW_KEY: &str = "2222222222222222222222222222222222222222222222222222222222222222";
/// What must never be readable at rest.
const PII: [&str; 4] = ["Zelda", "hyrule", "Secret Lane", "Hidden Village"];

/// A market on `db` with `keys` (`--data-key`, then `--old-data-keys`).
fn market(registry: &Service, db: &TestDb, keys: &[&str]) -> Service {
    let old = keys.get(1..).unwrap_or_default().join(",");
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--registry",
        &registry.url,
        "--db",
        &db.url,
        "--secret",
        SECRET,
        "--admin-token",
        ADMIN,
    ];
    if let Some(first) = keys.first() {
        args.extend(["--data-key", first]);
    }
    if !old.is_empty() {
        args.extend(["--old-data-keys", &old]);
    }
    Service::start(&binary("beacon-market"), &args).expect("market starts")
}

fn rotate(db: &TestDb, new: &str, old: &str) -> String {
    let out = Command::new(binary("beacon-market"))
        .args([
            "--db",
            &db.url,
            "--secret",
            SECRET,
            "--data-key",
            new,
            "--old-data-keys",
            old,
            "rotate-key",
        ])
        .output()
        .expect("run rotate-key");
    assert!(
        out.status.success(),
        "rotate-key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its answer is the last line (log lines may come before it).
    let said = String::from_utf8_lossy(&out.stdout);
    said.lines().last().unwrap_or_default().to_owned()
}

fn readable(dump: &[u8]) -> Vec<&'static str> {
    let text = String::from_utf8_lossy(dump);
    PII.into_iter().filter(|pii| text.contains(pii)).collect()
}

/// Support's view of customer `zelda`: the status and the body.
async fn support_reads(market: &Service) -> (StatusCode, Value) {
    let answer = Client::new()
        .get(format!("{}/api/customers/zelda", market.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("answer");
    (answer.status(), answer.json().await.unwrap_or(Value::Null))
}

async fn encrypted_found_by_email_and_rotated(db: TestDb) {
    let registry = Service::start(&binary("beacon-registry"), &["--listen", "127.0.0.1:0"])
        .expect("registry starts");
    let first = market(&registry, &db, &[OLD_KEY]);
    let http = Client::new();
    let url = format!("{}/api/customers/zelda", first.url);
    let zelda =
        json!({"name": "Zelda", "email": "zelda@hyrule.example", "address": "7 Secret Lane"});
    for (body, status) in [
        (zelda.clone(), StatusCode::CREATED),
        (
            json!({"name": "Zelda", "email": "zelda@hyrule.example", "address": "9 Hidden Village", "_version": 1}),
            StatusCode::OK,
        ),
    ] {
        let answer = http
            .put(&url)
            .header(header::COOKIE, OWNER)
            .json(&body)
            .send()
            .await
            .expect("save");
        assert_eq!(answer.status(), status);
    }
    assert_eq!(
        readable(&db.dump()),
        Vec::<&str>::new(),
        "PII in the stored data"
    );
    if !db.postgres {
        let path = db.url.trim_start_matches("sqlite:");
        for file in [path.to_owned(), format!("{path}-wal")] {
            let mode = std::fs::metadata(&file)
                .expect("database file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file} is {mode:o}");
        }
    }

    // Support finds her by email (any case) through the blind index.
    let found = json_of(
        http.get(format!("{}/api/customers", first.url))
            .query(&[("email", "ZELDA@Hyrule.example")])
            .bearer_auth(ADMIN),
    )
    .await;
    assert_eq!(found["customers"][0]["_id"], "zelda", "{found}");
    assert_eq!(
        found["customers"][0]["address"], "9 Hidden Village",
        "{found}"
    );
    let nobody = json_of(
        http.get(format!(
            "{}/api/customers?email=nobody@example.org",
            first.url
        ))
        .bearer_auth(ADMIN),
    )
    .await;
    assert_eq!(nobody["customers"], json!([]));
    assert!(first.stop().expect("stops").success());

    // Rotate: everything (current and history) resealed with the new key.
    let said = rotate(&db, NEW_KEY, OLD_KEY);
    assert!(said.starts_with("resealed 3 customer rows"), "{said}");
    let again = rotate(&db, NEW_KEY, OLD_KEY);
    assert!(again.starts_with("resealed 0 customer rows"), "{again}");
    assert_eq!(readable(&db.dump()), Vec::<&str>::new());

    // The new key alone reads it all; the old key alone, or none, can't,
    // and says so.
    let rotated = market(&registry, &db, &[NEW_KEY]);
    let (status, body) = support_reads(&rotated).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["address"], "9 Hidden Village");
    assert!(rotated.stop().expect("stops").success());
    for keys in [&[OLD_KEY][..], &[]] {
        let stale = market(&registry, &db, keys);
        let (status, body) = support_reads(&stale).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "data_key_missing", "{body}");
        assert!(stale.stop().expect("stops").success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_no_readable_pii_in_private_files_and_rotates_keys() {
    encrypted_found_by_email_and_rotated(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_no_readable_pii_in_a_dump_and_rotates_keys() {
    encrypted_found_by_email_and_rotated(TestDb::postgres()).await;
}
