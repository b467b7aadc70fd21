//! The market page in a real headless Chromium: ratings, cached badges, and
//! the live panel following a paused and resumed instance without a reload.
//! Screenshots of each state land in `target/screenshots/`.

mod support;

use fantoccini::{Client, Locator};
use std::time::Duration;
use support::{
    browser::{screenshot, ChromeDriver},
    demo::{all_live_from, Demo},
    eventually,
};

const PATIENCE: Duration = Duration::from_secs(15);

/// `data-source` of each thing on the page.
async fn sources(browser: &Client) -> Vec<String> {
    let mut sources = Vec::new();
    for thing in browser
        .find_all(Locator::Css("li.thing"))
        .await
        .expect("things")
    {
        sources.push(
            thing
                .attr("data-source")
                .await
                .ok()
                .flatten()
                .unwrap_or_default(),
        );
    }
    sources
}

/// The breaker the live panel shows for `ratings-N`.
async fn panel_breaker(browser: &Client, n: u16) -> Option<String> {
    let selector = format!("tr[data-instance='ratings-{n}'] [data-breaker]");
    let cell = browser.find(Locator::Css(&selector)).await.ok()?;
    cell.attr("data-breaker").await.ok().flatten()
}

async fn text_of(browser: &Client, selector: &str) -> String {
    match browser.find(Locator::Css(selector)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Scrolls the live panel into view, for the screenshot.
async fn show_panel(browser: &Client) {
    let script = "document.getElementById('panel-h').scrollIntoView();";
    browser.execute(script, vec![]).await.expect("scroll");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_degrades_and_its_live_panel_follows_failures_and_recovery() {
    let mut demo = Demo::start(&[1, 2, 3], &[]);
    eventually(PATIENCE, "all ratings live", || async {
        let (shown, _) = demo.things().await;
        all_live_from(&shown, &["ratings-1", "ratings-2", "ratings-3"]).then_some(())
    })
    .await;
    let driver = ChromeDriver::start().await;
    let browser = driver.browser().await;

    // Four things with live ratings and their values.
    browser
        .goto(&demo.market_url("/"))
        .await
        .expect("open the page");
    assert_eq!(sources(&browser).await, ["live"; 4]);
    let values: Vec<String> = {
        let mut values = Vec::new();
        for value in browser
            .find_all(Locator::Css("li.thing .value"))
            .await
            .expect("values")
        {
            // The value, then "out of 5 stars" for screen readers only.
            let text = value.text().await.expect("text");
            values.push(text.lines().next().unwrap_or_default().to_owned());
        }
        values
    };
    assert_eq!(values, ["2.1", "2.2", "4.5", "3.5"]);
    eventually(PATIENCE, "the live panel to connect", || async {
        text_of(&browser, "#live-state")
            .await
            .starts_with("Live")
            .then_some(())
    })
    .await;
    screenshot(&browser, "1-all-live").await;

    // Every instance killed: a reload still shows four ratings, as cached.
    for n in [1, 2, 3] {
        demo.stop_ratings(n);
    }
    eventually(PATIENCE, "the panel to empty", || async {
        let rows = browser
            .find_all(Locator::Css("#instances tbody tr"))
            .await
            .ok()?;
        rows.is_empty().then_some(())
    })
    .await;
    browser.refresh().await.expect("reload");
    assert_eq!(sources(&browser).await, ["cached"; 4]);
    assert!(
        text_of(&browser, "li.thing .badge")
            .await
            .starts_with("cached"),
        "badge"
    );
    screenshot(&browser, "2-all-cached").await;

    // Two instances back: live again.
    demo.start_ratings(1);
    demo.start_ratings(2);
    eventually(PATIENCE, "both instances on the panel", || async {
        let two = panel_breaker(&browser, 1).await.is_some()
            && panel_breaker(&browser, 2).await.is_some();
        two.then_some(())
    })
    .await;
    browser.refresh().await.expect("reload");
    eventually(PATIENCE, "live ratings after reload", || async {
        browser.refresh().await.ok()?;
        (sources(&browser).await == ["live"; 4]).then_some(())
    })
    .await;

    // Pause ratings-2 and keep using the market (not this page): the panel
    // turns its row OPEN by itself, no reload.
    demo.pause(2);
    eventually(PATIENCE, "ratings-2 OPEN on the panel", || async {
        demo.things().await;
        (panel_breaker(&browser, 2).await.as_deref() == Some("open")).then_some(())
    })
    .await;
    assert_eq!(
        text_of(&browser, "tr[data-instance='ratings-2'] .breaker").await,
        "OPEN"
    );
    let log = text_of(&browser, "#events").await;
    assert!(
        log.contains("OPEN breaker on [ratings at"),
        "event log: {log}"
    );
    show_panel(&browser).await;
    screenshot(&browser, "3-paused-open").await;

    // Resume it: the row turns CLOSED by itself.
    demo.resume(2);
    eventually(PATIENCE, "ratings-2 CLOSED on the panel", || async {
        (panel_breaker(&browser, 2).await.as_deref() == Some("closed")).then_some(())
    })
    .await;
    let log = text_of(&browser, "#events").await;
    assert!(
        log.contains("CLOSE breaker on [ratings at"),
        "event log: {log}"
    );
    show_panel(&browser).await;
    screenshot(&browser, "4-resumed-closed").await;

    // Make it slow instead (`make slowRatings INSTANCE=2 MS=200`): it stays
    // CLOSED and keeps answering, but its share of the calls drains.
    demo.set_faults(2, 200, 0).await;
    eventually(PATIENCE, "ratings-2's share to drain", || async {
        for _ in 0..5 {
            demo.things().await;
        }
        let share = text_of(&browser, "tr[data-instance='ratings-2'] .share").await;
        let percent: Option<u32> = share.trim_end_matches(" %").parse().ok();
        percent.is_some_and(|p| p <= 10).then_some(())
    })
    .await;
    assert_eq!(panel_breaker(&browser, 2).await.as_deref(), Some("closed"));
    let latency = text_of(&browser, "tr[data-instance='ratings-2'] .latency").await;
    assert!(
        latency.ends_with(" ms"),
        "a latency score shown: {latency:?}"
    );
    // Each instance's learned limit and the load it reports on its answers.
    let limit = text_of(&browser, "tr[data-instance='ratings-1'] .limit").await;
    assert!(
        limit.parse::<u32>().is_ok_and(|l| l >= 1),
        "a learned limit shown: {limit:?}"
    );
    let load = text_of(&browser, "tr[data-instance='ratings-1'] .load").await;
    assert!(load.ends_with(" %"), "a reported load shown: {load:?}");
    show_panel(&browser).await;
    screenshot(&browser, "4b-slow-drained").await;
    demo.set_faults(2, 0, 0).await;

    // Phone width: one column, nothing wider than the screen.
    browser.set_window_size(390, 844).await.expect("resize");
    browser.refresh().await.expect("reload");
    let fits = browser
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            vec![],
        )
        .await
        .expect("measure");
    assert_eq!(
        fits,
        serde_json::Value::Bool(true),
        "no horizontal scrolling at 390 px"
    );
    screenshot(&browser, "5-phone").await;

    browser.close().await.expect("close the browser");
}
