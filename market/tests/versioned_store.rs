//! The market's versioned state against both real stores — a SQLite file
//! and a PostgreSQL server — through two market processes sharing it:
//! racing writers lose nothing, stale writes merge or conflict with the
//! exact 409 body, every version is in the history, a restart keeps
//! everything, bad input writes nothing, and a row altered behind the
//! market's back is refused.

mod support;

use beacon_kit::process::Service;
use beacon_market::store::{Kind, Store};
use reqwest::{header, Client, StatusCode};
use serde_json::{json, Value};
use support::{binary, stores::TestDb, stores::SECRET};

const CART: &str = "0123456789abcdef0123456789abcdef";

/// A registry and market replicas on one database.
struct Markets {
    _registry: Service,
    replicas: Vec<Service>,
    db: TestDb,
    http: Client,
}

impl Markets {
    fn start(db: TestDb, replicas: usize) -> Self {
        let registry = Service::start(&binary("beacon-registry"), &["--listen", "127.0.0.1:0"])
            .expect("registry starts");
        let mut markets = Self {
            replicas: Vec::new(),
            _registry: registry,
            db,
            http: Client::new(),
        };
        for _ in 0..replicas {
            markets.start_replica();
        }
        markets
    }

    fn start_replica(&mut self) {
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--registry",
            &self._registry.url,
            "--db",
            &self.db.url,
            "--secret",
            SECRET,
        ];
        let market = Service::start(&binary("beacon-market"), &args).expect("market starts");
        self.replicas.push(market);
    }

    fn stop_replicas(&mut self) {
        for market in self.replicas.drain(..) {
            let status = market.stop().expect("market stops");
            assert!(status.success(), "market exit: {status}");
        }
    }

    async fn send(
        &self,
        replica: usize,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.replicas[replica].url);
        let method = method.parse().expect("method");
        let mut request = self
            .http
            .request(method, url)
            .header(header::COOKIE, format!("beacon_session={CART}"));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("market answers");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn customer(&self, replica: usize) -> Value {
        let (status, body) = self.send(replica, "GET", "/api/customers/ada", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A counter of `/_metrics`, summed over the replicas.
    async fn counter(&self, name: &str) -> f64 {
        let mut sum = 0.0;
        for market in &self.replicas {
            let text = self
                .http
                .get(format!("{}/_metrics", market.url))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("metrics text");
            sum += text
                .lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {name} in\n{text}"));
        }
        sum
    }
}

fn customer(name: &str, email: &str, address: &str, version: Option<i64>) -> Value {
    let mut body = json!({"name": name, "email": email, "address": address});
    if let Some(version) = version {
        body["_version"] = json!(version);
    }
    body
}

fn version(doc: &Value) -> i64 {
    doc["_version"].as_i64().expect("a _version")
}

async fn scenario(db: TestDb) {
    let mut markets = Markets::start(db, 2);

    // Created on one replica, read on the other.
    let ada = customer("Ada", "ada@example.org", "1 Loop Road", None);
    let (status, created) = markets
        .send(0, "PUT", "/api/customers/ada", Some(&ada))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(version(&created), 1);
    assert_eq!(markets.customer(1).await, created);

    // Bad input: a clear 4xx with a code, nothing written.
    for (path, body, code) in [
        (
            "/api/customers/ada",
            json!({"name": 5, "email": "a@b.org", "address": ""}),
            "invalid_field",
        ),
        (
            "/api/customers/ada",
            json!({"name": "A", "email": "not-an-email", "address": "", "_version": 1}),
            "invalid_field",
        ),
        (
            "/api/customers/ada",
            json!({"name": "A", "email": "a@b.org", "address": "", "age": 3, "_version": 1}),
            "unknown_field",
        ),
        (
            "/api/customers/ada",
            json!({"name": "A", "email": "a@b.org", "_version": 1}),
            "missing_field",
        ),
        (
            "/api/customers/ada",
            json!({"name": "A", "email": "a@b.org", "address": "", "_version": "one"}),
            "invalid_version",
        ),
        (
            "/api/customers/ada",
            json!({"name": "A", "email": "a@b.org", "address": "", "_version": 99}),
            "unknown_version",
        ),
        (
            "/api/customers/ada",
            json!({"name": "A", "email": "a@b.org", "address": "", "_id": "bob", "_version": 1}),
            "id_mismatch",
        ),
        (
            "/api/customers/ada",
            json!(["not", "an", "object"]),
            "invalid_json",
        ),
        ("/api/customers/Ada!", ada.clone(), "invalid_id"),
        ("/api/customers/ada", ada.clone(), "customer_exists"),
    ] {
        let (status, answer) = markets.send(0, "PUT", path, Some(&body)).await;
        assert!(status.is_client_error(), "{body} -> {status} {answer}");
        assert_eq!(answer["error"]["code"], code, "{body} -> {answer}");
    }
    let (status, answer) = markets.send(1, "GET", "/api/customers/nobody", None).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_customer"))
    );
    assert_eq!(
        markets.customer(0).await,
        created,
        "bad input wrote nothing"
    );

    // Two writers on two replicas, each changing a different field of the
    // version both read, at once, again and again: both land every time.
    for round in 0..30 {
        let current = markets.customer(0).await;
        let read = version(&current);
        let address = current["address"].as_str().unwrap_or_default().to_owned();
        let name = format!("Ada {round}");
        let email = format!("ada{round}@example.org");
        let by_a = customer(
            &name,
            current["email"].as_str().unwrap_or_default(),
            &address,
            Some(read),
        );
        let by_b = customer(
            current["name"].as_str().unwrap_or_default(),
            &email,
            &address,
            Some(read),
        );
        let (a, b) = tokio::join!(
            markets.send(0, "PUT", "/api/customers/ada", Some(&by_a)),
            markets.send(1, "PUT", "/api/customers/ada", Some(&by_b)),
        );
        assert_eq!(a.0, StatusCode::OK, "round {round}: {}", a.1);
        assert_eq!(b.0, StatusCode::OK, "round {round}: {}", b.1);
        let now = markets.customer(1).await;
        assert_eq!(
            (now["name"].as_str(), now["email"].as_str()),
            (Some(name.as_str()), Some(email.as_str())),
            "round {round}: an update was lost"
        );
        assert_eq!(
            version(&now),
            read + 2,
            "round {round}: two versions written"
        );
    }
    assert!(
        markets.counter("beacon_market_store_merges_total").await >= 30.0,
        "every round's second write merged"
    );
    assert!(
        markets.counter("beacon_market_store_retries_total").await >= 1.0,
        "some compare-and-set lost a race and was retried"
    );

    // The same field changed two ways: 409 with the exact body, nothing written.
    let before = markets.customer(0).await;
    let read = version(&before);
    let mine = customer(
        before["name"].as_str().unwrap_or_default(),
        before["email"].as_str().unwrap_or_default(),
        "2 Ring Street",
        Some(read),
    );
    let theirs = customer(
        before["name"].as_str().unwrap_or_default(),
        before["email"].as_str().unwrap_or_default(),
        "3 Mesh Lane",
        Some(read),
    );
    let (status, ours) = markets
        .send(0, "PUT", "/api/customers/ada", Some(&mine))
        .await;
    assert_eq!(status, StatusCode::OK, "{ours}");
    let (status, conflict) = markets
        .send(1, "PUT", "/api/customers/ada", Some(&theirs))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    let mut yours = theirs.clone();
    yours["_id"] = json!("ada");
    assert_eq!(
        conflict,
        json!({
            "message": conflict["message"],
            "conflicts": [{"_key": "address", "base_value": before["address"], "our_value": "2 Ring Street", "your_value": "3 Mesh Lane"}],
            "yours": yours,
            "ours": ours,
            "base": before,
        })
    );
    assert!(conflict["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(
        markets.customer(1).await,
        ours,
        "the conflict wrote nothing"
    );
    assert!(markets.counter("beacon_market_store_conflicts_total").await >= 1.0);

    // Every version is in the history.
    let last = version(&ours);
    let store = Store::open(&markets.db.url, SECRET.as_bytes())
        .await
        .expect("open the store");
    let versions: Vec<i64> = store
        .history(Kind::Customer, "ada")
        .await
        .expect("history")
        .iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(versions, (1..=last).collect::<Vec<_>>());
    store.close().await;

    // Carts: an add on each replica at once both stand; a checkout based on
    // a stale cart is refused with the current one.
    let (a, b) = tokio::join!(
        markets.send(0, "POST", "/api/cart/items/camera", None),
        markets.send(1, "POST", "/api/cart/items/basketball", None),
    );
    assert_eq!(
        (a.0, b.0),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{} {}",
        a.1,
        b.1
    );
    let (_, cart) = markets.send(1, "GET", "/api/cart", None).await;
    assert_eq!(cart["items"].as_array().map(Vec::len), Some(2), "{cart}");
    let seen = version(&cart);
    let (status, _) = markets
        .send(0, "POST", "/api/cart/items/football", None)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for (path, body, code) in [
        (
            "/api/checkout",
            json!({"_version": "three"}),
            "invalid_version",
        ),
        ("/api/checkout", json!({"_version": -1}), "invalid_version"),
        (
            "/api/cart/items/briefcase",
            json!({"_version": 99}),
            "unknown_version",
        ),
    ] {
        let (status, answer) = markets.send(1, "POST", path, Some(&body)).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{body}"
        );
    }
    let (status, stale) = markets
        .send(1, "POST", "/api/checkout", Some(&json!({"_version": seen})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{stale}");
    assert_eq!(stale["error"]["code"], "stale_cart");
    assert_eq!(
        stale["cart"]["items"].as_array().map(Vec::len),
        Some(3),
        "{stale}"
    );

    // A restart keeps carts and customers.
    markets.stop_replicas();
    markets.start_replica();
    assert_eq!(
        markets.customer(0).await,
        ours,
        "the customer outlived the restart"
    );
    let (_, cart) = markets.send(0, "GET", "/api/cart", None).await;
    assert_eq!(
        cart["items"].as_array().map(Vec::len),
        Some(3),
        "the cart outlived the restart: {cart}"
    );
    let (status, receipt) = markets
        .send(
            0,
            "POST",
            "/api/checkout",
            Some(&json!({"_version": version(&cart)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["bought"]["items"].as_array().map(Vec::len), Some(3));

    // A row altered behind the market's back is refused, logged and counted.
    markets.db.run_sql(
        r#"UPDATE documents SET body = '{"name":"Eve","email":"eve@example.org","address":"x"}' WHERE kind = 'customer' AND id = 'ada'"#,
    );
    let (status, refused) = markets.send(0, "GET", "/api/customers/ada", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "tampered");
    assert!(
        !refused.to_string().contains("Eve"),
        "the tampered row was not served"
    );
    assert_eq!(
        markets.counter("beacon_market_store_tampered_total").await,
        1.0
    );
    markets.replicas[0]
        .until_logged("tampered", std::time::Duration::from_secs(10))
        .await;
    assert!(
        markets
            .counter("beacon_market_store_versions_written_total")
            .await
            >= 1.0
    );

    // Deep health asks the store; a bad query is a 400.
    let (status, health) = markets.send(0, "GET", "/_health?deep=true", None).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(
        health["store"],
        if markets.db.postgres {
            "postgres"
        } else {
            "sqlite"
        }
    );
    let (status, answer) = markets.send(0, "GET", "/_health?deep=perhaps", None).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    if markets.db.postgres {
        // The database gone: deep health says so, plain health still 200.
        markets.db.stop_server();
        let (status, answer) = markets.send(0, "GET", "/_health?deep=true", None).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable")),
            "{answer}"
        );
        let (status, _) = markets.send(0, "GET", "/_health", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    markets.stop_replicas();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_shared_by_two_markets() {
    scenario(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_shared_by_two_markets() {
    scenario(TestDb::postgres()).await;
}
