//! The market when its store is new, down or back, against the real stores
//! and processes: replicas that start together on a new database both come
//! up; with PostgreSQL stopped the page still answers within its deadline
//! (catalogue and ratings, and a cart "unavailable right now"), writes fail
//! fast with `503 store_unavailable`, a failed form post says so on the
//! page, deep health says why; and writes come back without a restart once
//! the server does.

mod support;

use beacon_kit::process::Service;
use reqwest::{header, redirect::Policy, Client, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};
use support::{binary, stores::TestDb, stores::SECRET};

const CART: &str = "0123456789abcdef0123456789abcdef";

fn start_market(registry: &Service, db: &str) -> Result<Service, String> {
    Service::start(
        &binary("beacon-market"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--registry",
            &registry.url,
            "--db",
            db,
            "--secret",
            SECRET,
        ],
    )
}

fn registry() -> Service {
    Service::start(&binary("beacon-registry"), &["--listen", "127.0.0.1:0"]).expect("registry")
}

/// Two replicas started at the same moment on a database nobody has
/// migrated yet: both come up and both take writes.
async fn start_two_at_once(registry: &Service, db: &str) {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| start_market(registry, db));
        let b = s.spawn(|| start_market(registry, db));
        (a.join().expect("thread"), b.join().expect("thread"))
    });
    let markets = [a.expect("replica a starts"), b.expect("replica b starts")];
    let http = Client::new();
    for market in &markets {
        let health = http
            .get(format!("{}/_health?deep=true", market.url))
            .send()
            .await
            .expect("health answers");
        assert_eq!(health.status(), StatusCode::OK, "{db}");
    }
    for market in markets {
        assert!(market.stop().expect("stops").success());
    }
}

#[tokio::test]
async fn two_replicas_starting_together_on_a_new_sqlite_file_both_come_up() {
    let registry = registry();
    for trial in 0..10 {
        let db = TestDb::sqlite();
        eprintln!("trial {trial}: {}", db.url);
        start_two_at_once(&registry, &db.url).await;
    }
}

#[tokio::test]
async fn two_replicas_starting_together_on_a_new_postgres_database_both_come_up() {
    let registry = registry();
    let server = TestDb::postgres();
    for trial in 0..3 {
        server.run_sql(&format!("CREATE DATABASE fresh{trial}"));
        let url = server.url.replace("/postgres", &format!("/fresh{trial}"));
        start_two_at_once(&registry, &url).await;
    }
}

#[tokio::test]
async fn with_postgres_stopped_the_page_keeps_its_deadline_and_writes_fail_fast_then_come_back() {
    let db = TestDb::postgres();
    let registry = registry();
    let market = start_market(&registry, &db.url).expect("market starts");
    let http = Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let cookie = format!("beacon_session={CART}");
    let add = || {
        http.post(format!("{}/api/cart/items/camera", market.url))
            .header(header::COOKIE, &cookie)
            .send()
    };
    assert_eq!(add().await.expect("add").status(), StatusCode::CREATED);

    db.stop_server();

    // The page: 200 within its 1 s deadline (and a margin for a busy
    // machine, well under the 5 s it took before), the catalogue there,
    // the cart said to be unavailable.
    let started = Instant::now();
    let page = http
        .get(format!("{}/", market.url))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .expect("page");
    let took = started.elapsed();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(took < Duration::from_millis(2500), "the page took {took:?}");
    assert!(html.contains("unavailable right now"), "{html}");
    assert!(html.contains("Camera"), "the catalogue is shown: {html}");
    let token = support::csrf_token(&html);

    // A JSON write: a clear 503 with its code, within the 2 s write bound.
    let started = Instant::now();
    let answer = add().await.expect("answer");
    let took = started.elapsed();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert!(
        took < Duration::from_millis(3500),
        "the write took {took:?}"
    );

    // A form post: back to the page with a notice the page shows.
    let form = http
        .post(format!("{}/cart/add", market.url))
        .header(header::COOKIE, &cookie)
        .form(&[("thing", "football"), ("csrf", token.as_str())])
        .send()
        .await
        .expect("form post");
    assert_eq!(form.status(), StatusCode::SEE_OTHER);
    let location = form.headers()[header::LOCATION]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(location.contains("notice=store_unavailable"), "{location}");
    let shown = http
        .get(format!("{}{location}", market.url))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(shown.contains("nothing was changed"), "{shown}");

    // Deep health: 503, saying why.
    let health = http
        .get(format!("{}/_health?deep=true", market.url))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = health.json().await.expect("json");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );

    // Back: the same server again on its port; no market restart.
    let port = db.url.rsplit(':').next().and_then(|p| p.split('/').next());
    db.restart_server(port.expect("a port"));
    let back_by = Instant::now() + Duration::from_secs(10);
    loop {
        let status = add().await.map(|r| r.status());
        // The camera was added before the outage: 409 already_in_cart
        // is a write path that read the store again.
        if matches!(status, Ok(StatusCode::CONFLICT)) {
            break;
        }
        assert!(
            Instant::now() < back_by,
            "writes did not come back: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let removed = http
        .delete(format!("{}/api/cart/items/camera", market.url))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .expect("remove");
    assert_eq!(removed.status(), StatusCode::OK);
    let health = http
        .get(format!("{}/_health?deep=true", market.url))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), StatusCode::OK);
}
