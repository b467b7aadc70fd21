//! Who gets in, tried as an attacker would on a real market process: a
//! customer record is its session's (others get 404, support reads any
//! with the admin token); the session cookie never appears in the page;
//! form posts need the session's CSRF token, writes from another origin
//! are refused, the JSON API takes JSON only; the page carries security
//! headers; every error, 413 included, is the JSON error body.

mod support;

use reqwest::{header, redirect::Policy, Client, Method, StatusCode};
use serde_json::{json, Value};
use support::{csrf_token, demo::Demo, json_of};

const ADMIN: &str = "support-token-0123456789";
const ALICE: &str = "beacon_session=a11ce000a11ce000a11ce000a11ce000";
const MALLORY: &str = "beacon_session=ba0ba0ba0ba0ba0ba0ba0ba0ba0ba0ba";

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// A request as `cookie`'s browser would send it (no `Origin`, like curl).
fn as_session(http: &Client, method: Method, url: String, cookie: &str) -> reqwest::RequestBuilder {
    http.request(method, url).header(header::COOKIE, cookie)
}

async fn code_of(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_is_its_sessions_and_support_reads_any_with_the_admin_token() {
    let demo = Demo::start(&[], &["--admin-token", ADMIN]);
    let http = client();
    let url = demo.market_url("/api/customers/ada");
    let ada = json!({"name": "Ada", "email": "ada@example.org", "address": "1 Analytical Row"});
    let created = as_session(&http, Method::PUT, url.clone(), ALICE)
        .json(&ada)
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), StatusCode::CREATED);
    let mine = json_of(as_session(&http, Method::GET, url.clone(), ALICE)).await;
    assert_eq!(mine["name"], "Ada");
    assert!(
        mine.get("_owner").is_none(),
        "the owner's mark is not answered: {mine}"
    );

    // Another session, or none: as if there were no such customer, and
    // nothing changes.
    for cookie in [MALLORY, ""] {
        let read = as_session(&http, Method::GET, url.clone(), cookie)
            .send()
            .await
            .expect("read");
        assert_eq!(
            code_of(read).await,
            (StatusCode::NOT_FOUND, "unknown_customer".into())
        );
        let overwrite =
            json!({"name": "Mallory", "email": "m@evil.example", "address": "x", "_version": 1});
        let write = as_session(&http, Method::PUT, url.clone(), cookie)
            .json(&overwrite)
            .send()
            .await
            .expect("write");
        assert_eq!(
            code_of(write).await,
            (StatusCode::NOT_FOUND, "unknown_customer".into())
        );
    }

    // Support reads any customer with the admin token; a wrong token is 401.
    let support = json_of(http.get(url.clone()).bearer_auth(ADMIN)).await;
    assert_eq!(support["name"], "Ada", "{support}");
    assert_eq!(support["_version"], 1, "Mallory's writes changed nothing");
    let wrong = http
        .get(url)
        .bearer_auth("guessed-token-0000000")
        .send()
        .await
        .expect("read");
    assert_eq!(
        code_of(wrong).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_posts_need_the_sessions_token_and_writes_from_another_origin_are_refused() {
    let demo = Demo::start(&[], &[]);
    let http = client();
    let page = as_session(&http, Method::GET, demo.market_url("/"), ALICE)
        .send()
        .await
        .expect("page");
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    // Pages go through the overload layer, which reports the market's load;
    // operations stay outside it.
    let load = page.headers()["endpoint-load-metrics"]
        .to_str()
        .expect("ascii");
    assert!(load.starts_with("TEXT"), "{load}");
    let health = http
        .get(demo.market_url("/_health"))
        .send()
        .await
        .expect("health");
    assert!(!health.headers().contains_key("endpoint-load-metrics"));
    let html = page.text().await.expect("html");
    let secret = ALICE.trim_start_matches("beacon_session=");
    assert!(
        !html.contains(secret),
        "the session cookie is never in the page"
    );
    assert!(!html.contains("<script>"), "no inline script");
    let token = csrf_token(&html);
    let mallory_page = as_session(&http, Method::GET, demo.market_url("/"), MALLORY)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let mallory_token = csrf_token(&mallory_page);
    assert_ne!(token, mallory_token);

    let cart_len = || async {
        let cart = json_of(as_session(
            &http,
            Method::GET,
            demo.market_url("/api/cart"),
            ALICE,
        ))
        .await;
        cart["items"].as_array().map_or(0, Vec::len)
    };
    let post_form = |token: Option<String>| {
        let mut form = vec![("thing".to_owned(), "camera".to_owned())];
        form.extend(token.map(|t| ("csrf".to_owned(), t)));
        as_session(&http, Method::POST, demo.market_url("/cart/add"), ALICE)
            .form(&form)
            .send()
    };
    for (who, sent) in [
        ("no token", None),
        ("another session's", Some(mallory_token)),
    ] {
        let refused = post_form(sent).await.expect("post");
        assert_eq!(
            code_of(refused).await,
            (StatusCode::FORBIDDEN, "csrf".into()),
            "{who}"
        );
    }
    assert_eq!(cart_len().await, 0, "a refused post changed nothing");
    let added = post_form(Some(token.clone())).await.expect("post");
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    assert_eq!(cart_len().await, 1);

    // A cross-site form post comes without the (SameSite=Lax) cookie: it
    // is refused, and gets no new session cookie that would replace the
    // visitor's and cut them off from their cart.
    let cross_site = http
        .post(demo.market_url("/cart/add"))
        .header(header::ORIGIN, "http://evil.example")
        .form(&[("thing", "football")])
        .send()
        .await
        .expect("post");
    assert!(cross_site.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(
        code_of(cross_site).await,
        (StatusCode::FORBIDDEN, "csrf".into())
    );
    let cookieless = http
        .post(demo.market_url("/api/cart/items/football"))
        .send()
        .await
        .expect("post");
    assert!(cookieless.headers().get(header::SET_COOKIE).is_none());

    // The JSON API: another origin (another port of this host) is refused,
    // the page's own origin and no Origin at all (curl) are let through.
    let own = demo.market_url("");
    let port = own.rsplit(':').next().expect("port").trim_end_matches('/');
    let other_origin = format!(
        "http://127.0.0.1:{}",
        port.parse::<u16>().expect("port") + 1
    );
    let add = |thing: &str, origin: Option<&str>| {
        let mut request = as_session(
            &http,
            Method::POST,
            demo.market_url(&format!("/api/cart/items/{thing}")),
            ALICE,
        );
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.send()
    };
    let foreign = add("football", Some(&other_origin)).await.expect("post");
    assert_eq!(
        code_of(foreign).await,
        (StatusCode::FORBIDDEN, "csrf".into())
    );
    assert_eq!(cart_len().await, 1);
    let own_origin = own.trim_end_matches('/').to_owned();
    assert_eq!(
        add("football", Some(&own_origin))
            .await
            .expect("post")
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        add("basketball", None).await.expect("post").status(),
        StatusCode::CREATED
    );

    // A foreign-origin checkout as text/plain (what a cross-site form can
    // send without asking) is refused; so is text/plain from anywhere.
    let checkout = |origin: Option<&str>| {
        let mut request = as_session(&http, Method::POST, demo.market_url("/api/checkout"), ALICE)
            .header(header::CONTENT_TYPE, "text/plain")
            .body("{}");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.send()
    };
    let foreign = checkout(Some(&other_origin)).await.expect("post");
    assert_eq!(
        code_of(foreign).await,
        (StatusCode::FORBIDDEN, "csrf".into())
    );
    let plain = checkout(None).await.expect("post");
    assert_eq!(
        code_of(plain).await,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type".into()
        )
    );
    assert_eq!(cart_len().await, 3, "nothing was bought");

    // A token sent with an API write must be the session's.
    let wrong = as_session(
        &http,
        Method::DELETE,
        demo.market_url("/api/cart/items/camera"),
        ALICE,
    )
    .header("x-csrf-token", "not-the-token")
    .send()
    .await
    .expect("delete");
    assert_eq!(code_of(wrong).await, (StatusCode::FORBIDDEN, "csrf".into()));
    let right = as_session(
        &http,
        Method::DELETE,
        demo.market_url("/api/cart/items/camera"),
        ALICE,
    )
    .header("x-csrf-token", token)
    .send()
    .await
    .expect("delete");
    assert_eq!(right.status(), StatusCode::OK);

    // Too large a body: the JSON error, like every other.
    let huge = "x".repeat(3 * 1024 * 1024);
    let too_large = as_session(
        &http,
        Method::PUT,
        demo.market_url("/api/customers/ada"),
        ALICE,
    )
    .header(header::CONTENT_TYPE, "application/json")
    .body(format!("{{\"name\":\"{huge}\"}}"))
    .send()
    .await
    .expect("put");
    assert_eq!(
        code_of(too_large).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );
}
