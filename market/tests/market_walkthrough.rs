//! The walkthrough (README, "The demo") against real registry,
//! ratings and market processes, through the market's JSON API — with the
//! better behaviour: no step leaves the page slow or a rating missing.

mod support;

use std::{collections::BTreeSet, time::Duration};
use support::{
    demo::{all_live_from, Demo},
    eventually, get_text,
};

/// The market's page deadline in these tests (the original demo's ~1 s).
const DEADLINE: Duration = Duration::from_millis(1000);
const PATIENCE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_keeps_every_answer_whole_and_fast() {
    // Step 3: three instances; every rating is live.
    let mut demo = Demo::start(&[1, 2, 3], &[]);
    eventually(PATIENCE, "all four ratings live", || async {
        let (shown, _) = demo.things().await;
        all_live_from(&shown, &["ratings-1", "ratings-2", "ratings-3"]).then_some(())
    })
    .await;

    // Step 5-6: all killed. Every rating still shown, from cache, at once.
    for n in [1, 2, 3] {
        demo.stop_ratings(n);
    }
    eventually(PATIENCE, "the market to see no instances", || async {
        let status = demo.status().await;
        status["instances"].as_array()?.is_empty().then_some(())
    })
    .await;
    let (shown, took) = demo.things().await;
    assert!(
        shown.iter().all(|(_, source, _)| source == "cached"),
        "{shown:?}"
    );
    assert!(took < Duration::from_millis(250), "fails fast: {took:?}");
    demo.market
        .until_logged("all ratings instances are down", PATIENCE)
        .await;

    // Step 7-8: one back; everything live from it.
    demo.start_ratings(1);
    eventually(PATIENCE, "all live from ratings-1", || async {
        let (shown, _) = demo.things().await;
        all_live_from(&shown, &["ratings-1"]).then_some(())
    })
    .await;
    demo.market
        .until_logged(
            "ratings using instance ratings-1: http://127.0.0.1:",
            PATIENCE,
        )
        .await;

    // Step 9-10: a second one; requests interleave between the two.
    demo.start_ratings(2);
    eventually(
        PATIENCE,
        "requests to interleave over ratings-1 and ratings-2",
        || async {
            let (shown, _) = demo.things().await;
            let used: BTreeSet<String> = shown.into_iter().filter_map(|(_, _, i)| i).collect();
            (used.len() == 2).then_some(())
        },
    )
    .await;

    // Step 11-12: pause ratings-2. Every answer is still whole, live and
    // within the deadline: a call that went to the paused instance is
    // answered by its hedge on ratings-1 (or, without budget, by the retry
    // after one attempt timeout). The first attempt, left to finish alone,
    // times out, and the breaker opens.
    demo.pause(2);
    eventually(PATIENCE, "ratings-2's breaker OPEN", || async {
        let (shown, took) = demo.things().await;
        assert!(all_live_from(&shown, &["ratings-1"]), "{shown:?}");
        assert!(took < DEADLINE, "answered in {took:?}");
        (demo.breaker(2).await.as_deref() == Some("open")).then_some(())
    })
    .await;
    let address = demo.ratings[&2].url.clone();
    demo.market
        .until_logged(&format!("OPEN breaker on [ratings at {address}]"), PATIENCE)
        .await;

    // Step 13: while it is open, requests are fast and all go to ratings-1.
    for _ in 0..5 {
        let (shown, took) = demo.things().await;
        assert!(all_live_from(&shown, &["ratings-1"]), "{shown:?}");
        assert!(
            took < Duration::from_millis(250),
            "no timeout paid: {took:?}"
        );
    }

    // Step 14: resume it. Its breaker closes in about a second (a health
    // check finds it answering), not after the 30 s open time.
    let resumed = tokio::time::Instant::now();
    demo.resume(2);
    eventually(PATIENCE, "ratings-2's breaker to close", || async {
        (demo.breaker(2).await.as_deref() == Some("closed")).then_some(())
    })
    .await;
    assert!(
        resumed.elapsed() < Duration::from_secs(10),
        "closed after {:?}",
        resumed.elapsed()
    );
    demo.market
        .until_logged(
            &format!("CLOSE breaker on [ratings at {address}]"),
            PATIENCE,
        )
        .await;

    // Step 15: requests interleave again.
    eventually(PATIENCE, "requests to interleave again", || async {
        let (shown, took) = demo.things().await;
        assert!(took < DEADLINE);
        let used: BTreeSet<String> = shown.into_iter().filter_map(|(_, _, i)| i).collect();
        (used.len() == 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_instance_past_its_lease_comes_back_through_re_registration() {
    // Health checks can't help here: the open time is long, and the only
    // other way back is the re-registration after the lease lapsed.
    let mut demo = Demo::start(&[1, 2], &[]);
    eventually(PATIENCE, "both instances in use", || async {
        let (shown, _) = demo.things().await;
        let used: BTreeSet<String> = shown.into_iter().filter_map(|(_, _, i)| i).collect();
        (used.len() == 2).then_some(())
    })
    .await;
    demo.pause(2);
    let (shown, took) = demo.things().await;
    assert!(
        all_live_from(&shown, &["ratings-1"]) && took < DEADLINE,
        "{shown:?} {took:?}"
    );
    eventually(PATIENCE, "ratings-2's lease to lapse", || async {
        demo.breaker(2).await.is_none().then_some(())
    })
    .await;
    demo.resume(2);
    eventually(PATIENCE, "ratings-2 back and closed", || async {
        (demo.breaker(2).await.as_deref() == Some("closed")).then_some(())
    })
    .await;
    demo.stop_ratings(2);
    demo.stop_ratings(1);
}

/// The market and the ratings instances each live on their process's one
/// shared lease; the market registers itself as `market`, and leaves the
/// registry before it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_market_and_ratings_register_on_their_process_s_shared_lease() {
    let mut demo = Demo::start(&[1], &[]);
    let registry = demo.registry.url.clone();
    let listed = |service: &'static str| {
        let url = format!("{registry}/v1/services/{service}");
        async move {
            let answer: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
            answer["instances"].as_array().cloned()
        }
    };
    let market = eventually(PATIENCE, "the market registered", || async {
        listed("market").await?.into_iter().next()
    })
    .await;
    let port = demo
        .market
        .url
        .rsplit(':')
        .next()
        .expect("a port")
        .to_owned();
    assert_eq!(market["id"], format!("market-{port}"));
    assert_eq!(market["address"], demo.market.url);
    assert!(market["lease"].is_string(), "{market}");
    let ratings = eventually(PATIENCE, "ratings-1 registered", || async {
        listed("ratings").await?.into_iter().next()
    })
    .await;
    assert!(ratings["lease"].is_string(), "{ratings}");
    assert_ne!(ratings["lease"], market["lease"], "one lease per process");

    demo.market.signal("TERM");
    demo.market
        .wait(PATIENCE)
        .expect("the market exits on SIGTERM");
    let after = listed("market").await.expect("a list");
    assert!(after.is_empty(), "left before exiting: {after:?}");
    demo.stop_ratings(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_rating_past_its_maximum_age_shows_as_none() {
    // Without a maximum age a page could pass for healthy forever on
    // values fetched once: stale ratings must stop being shown.
    let mut demo = Demo::start(&[1], &["--rating-max-age-ms", "2000"]);
    eventually(PATIENCE, "all four ratings live", || async {
        let (shown, _) = demo.things().await;
        all_live_from(&shown, &["ratings-1"]).then_some(())
    })
    .await;
    demo.stop_ratings(1);
    let (shown, _) = demo.things().await;
    assert!(
        shown.iter().all(|(_, source, _)| source == "cached"),
        "young values are served from cache: {shown:?}"
    );
    eventually(PATIENCE, "every rating to age out", || async {
        let (shown, _) = demo.things().await;
        shown
            .iter()
            .all(|(_, source, instance)| source == "none" && instance.is_none())
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cart_adds_once_removes_totals_and_checks_out() {
    let demo = Demo::start(&[], &[]);
    let http = reqwest::Client::new();
    let first = http
        .get(demo.market_url("/api/cart"))
        .send()
        .await
        .expect("cart");
    let cookie = first
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a cart cookie")
        .to_owned();
    let call = |method: reqwest::Method, path: &str| {
        http.request(method, demo.market_url(path))
            .header("cookie", cookie.clone())
            .send()
    };
    use reqwest::Method;

    let added = call(Method::POST, "/api/cart/items/camera")
        .await
        .expect("add");
    assert_eq!(added.status(), 201);
    let added = call(Method::POST, "/api/cart/items/basketball")
        .await
        .expect("add");
    let cart: serde_json::Value = added.json().await.expect("json");
    assert_eq!(cart["total_cents"], 9999 + 1999);
    assert_eq!(cart["items"][0]["id"], "basketball", "catalog order");

    let again = call(Method::POST, "/api/cart/items/camera")
        .await
        .expect("add again");
    assert_eq!(again.status(), 409);
    let error: serde_json::Value = again.json().await.expect("json");
    assert_eq!(error["error"]["code"], "already_in_cart");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("Camera"));

    let unknown = call(Method::POST, "/api/cart/items/piano")
        .await
        .expect("add");
    assert_eq!(unknown.status(), 404);

    let removed = call(Method::DELETE, "/api/cart/items/camera")
        .await
        .expect("remove");
    let cart: serde_json::Value = removed.json().await.expect("json");
    assert_eq!(cart["total_cents"], 1999);
    let missing = call(Method::DELETE, "/api/cart/items/camera")
        .await
        .expect("remove");
    assert_eq!(missing.status(), 404);

    // Another browser has its own cart.
    let stranger: serde_json::Value = http
        .get(demo.market_url("/api/cart"))
        .send()
        .await
        .expect("cart")
        .json()
        .await
        .expect("json");
    assert_eq!(stranger["total_cents"], 0);

    let receipt: serde_json::Value = call(Method::POST, "/api/checkout")
        .await
        .expect("checkout")
        .json()
        .await
        .expect("json");
    assert_eq!(receipt["bought"]["total_cents"], 1999);
    let cart: serde_json::Value = call(Method::GET, "/api/cart")
        .await
        .expect("cart")
        .json()
        .await
        .expect("json");
    assert_eq!(
        cart["items"].as_array().map(Vec::len),
        Some(0),
        "checkout clears"
    );
    let empty = call(Method::POST, "/api/checkout").await.expect("checkout");
    assert_eq!(empty.status(), 409);

    // The page's forms do the same, and say so: each carries the
    // session's CSRF token, which the page gives.
    let page = call(Method::GET, "/")
        .await
        .expect("page")
        .text()
        .await
        .expect("page");
    let token = support::csrf_token(&page);
    let add_football = || async {
        http.post(demo.market_url("/cart/add"))
            .header("cookie", cookie.clone())
            .form(&[("thing", "football"), ("csrf", token.as_str())])
            .send()
            .await
            .expect("form")
            .text()
            .await
            .expect("page")
    };
    let page = add_football().await;
    assert!(page.contains("Football is in your cart."), "{page}");
    let page = add_football().await;
    assert!(page.contains("Football is already in your cart"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_instance_is_drained_and_wins_its_share_back_once_healed() {
    let demo = Demo::start(&[1, 2, 3], &[]);
    eventually(PATIENCE, "all four ratings live", || async {
        let (shown, _) = demo.things().await;
        all_live_from(&shown, &["ratings-1", "ratings-2", "ratings-3"]).then_some(())
    })
    .await;

    // `make slowRatings INSTANCE=2 MS=150`: alive, never timing out, slow.
    demo.set_faults(2, 150, 0).await;
    for _ in 0..10 {
        demo.things().await;
    }
    let mut from_slow = 0;
    let mut shown_in_all = 0;
    for _ in 0..40 {
        let (shown, took) = demo.things().await;
        assert!(took < DEADLINE, "{took:?}");
        assert!(all_live_from(
            &shown,
            &["ratings-1", "ratings-2", "ratings-3"]
        ));
        from_slow += shown
            .iter()
            .filter(|(_, _, i)| i.as_deref() == Some("ratings-2"))
            .count();
        shown_in_all += shown.len();
    }
    assert!(
        from_slow * 20 <= shown_in_all,
        "the slow instance served {from_slow} of {shown_in_all} ratings (at most 5%)"
    );
    // The library's metrics, in the market's /_metrics: the balancer's
    // estimate shows ratings-2 slow, the attempts and breakers are there.
    // The estimate is a peak-EWMA with τ 1 s: 150 ms right after ratings-2
    // answers, then decaying while it is drained (the point of it), so it
    // is read between calls until a reading follows one of its answers.
    let metrics = eventually(
        PATIENCE,
        "the estimate to show ratings-2 150 ms late and ratings-1 fast",
        || async {
            demo.things().await;
            let metrics = get_text(demo.market_url("/_metrics")).await?;
            let (slow, fast) = (
                latency_estimate(&metrics, "ratings-2"),
                latency_estimate(&metrics, "ratings-1"),
            );
            (slow > 0.1 && fast < 0.05).then_some(metrics)
        },
    )
    .await;
    for family in [
        "beacon_market_client_attempts_total{service=\"ratings\",instance=\"ratings-2\",outcome=\"success\"}",
        "beacon_market_client_breaker{service=\"ratings\",instance=\"ratings-2\",state=\"closed\"} 1",
        "beacon_market_client_hedges_total{service=\"ratings\",result=\"sent\"}",
        "beacon_market_client_retries_total{service=\"ratings\"}",
        "beacon_market_client_attempt_duration_seconds_count{service=\"ratings\"}",
    ] {
        assert!(metrics.contains(family), "{family} missing from:\n{metrics}");
    }

    // `make healRatings INSTANCE=2`: as its slowness decays (τ 1 s) it is
    // tried again, answers fast, and is back in the mix.
    demo.set_faults(2, 0, 0).await;
    eventually(
        Duration::from_secs(60),
        "ratings-2 back in the mix",
        || async {
            let (shown, _) = demo.things().await;
            shown
                .iter()
                .any(|(_, _, i)| i.as_deref() == Some("ratings-2"))
                .then_some(())
        },
    )
    .await;
}

/// The balancer's latency estimate for ratings `instance`, in seconds, from
/// the market's `/_metrics` text.
fn latency_estimate(metrics: &str, instance: &str) -> f64 {
    let prefix = format!(
        "beacon_market_client_latency_estimate_seconds{{service=\"ratings\",instance=\"{instance}\"}} "
    );
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no estimate for {instance} in:\n{metrics}"))
}
