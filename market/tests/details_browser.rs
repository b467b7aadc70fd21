//! "Your details" in a real headless Chromium: two tabs of one browser edit
//! the same field; the second save shows the conflict screen (before /
//! saved elsewhere / yours), and the pick is saved on the current version.
//! The screenshot lands in `target/screenshots/6-details-conflict.png`.

mod support;

use fantoccini::{elements::Element, Client, Locator};
use std::time::Duration;
use support::{
    browser::{screenshot, ChromeDriver},
    demo::Demo,
    eventually,
};

const PATIENCE: Duration = Duration::from_secs(15);

/// Support's token, to read what the browser saved.
const ADMIN: &str = "support-token-0123456789";

async fn find(browser: &Client, css: &str) -> Element {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// Waits until the details status line says `text`.
async fn state_is(browser: &Client, text: &str) {
    eventually(
        PATIENCE,
        &format!("the details to say {text:?}"),
        || async {
            let now = find(browser, "#details-state").await.text().await.ok()?;
            (now == text).then_some(())
        },
    )
    .await;
}

async fn set(browser: &Client, css: &str, value: &str) {
    let field = find(browser, css).await;
    field.clear().await.expect("clear");
    field.send_keys(value).await.expect("type");
}

async fn save(browser: &Client) {
    find(browser, "#details-save")
        .await
        .click()
        .await
        .expect("save");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_editing_one_field_get_the_conflict_screen_and_the_pick_is_saved() {
    let demo = Demo::start(&[1], &["--admin-token", ADMIN]);
    let driver = ChromeDriver::start().await;
    let browser = driver.browser().await;
    let page = demo.market.url.clone();

    // Tab A creates the record.
    browser.goto(&page).await.expect("open the market");
    state_is(&browser, "Not saved yet.").await;
    set(&browser, "#details-name", "Ada").await;
    set(&browser, "#details-email", "ada@example.org").await;
    set(&browser, "#details-address", "1 Loop Road").await;
    save(&browser).await;
    state_is(&browser, "Saved, version 1.").await;
    let tab_a = browser.window().await.expect("this tab");

    // Tab B opens it at version 1.
    let tab_b = browser.new_window(true).await.expect("a second tab").handle;
    browser
        .switch_to_window(tab_b.clone())
        .await
        .expect("to tab B");
    browser.goto(&page).await.expect("open the market");
    state_is(&browser, "Saved, version 1.").await;

    // A changes the name and saves; then B changes the same field.
    browser
        .switch_to_window(tab_a.clone())
        .await
        .expect("to tab A");
    set(&browser, "#details-name", "Ada from tab A").await;
    save(&browser).await;
    state_is(&browser, "Saved, version 2.").await;
    browser.switch_to_window(tab_b).await.expect("to tab B");
    set(&browser, "#details-name", "Ada from tab B").await;
    set(&browser, "#details-address", "2 Ring Street").await;
    save(&browser).await;
    state_is(&browser, "Not saved: someone else changed the same fields.").await;

    // The conflict screen: one row, the name, with its three values.
    let rows = browser
        .find_all(Locator::Css("#conflict-table tbody tr"))
        .await
        .expect("rows");
    assert_eq!(
        rows.len(),
        1,
        "only the name conflicts (the address merges)"
    );
    assert_eq!(
        rows[0].attr("data-field").await.expect("attr").as_deref(),
        Some("name")
    );
    let cells: Vec<String> = {
        let mut texts = Vec::new();
        for cell in rows[0]
            .find_all(Locator::Css("th, td"))
            .await
            .expect("cells")
        {
            texts.push(cell.text().await.expect("text").trim().to_owned());
        }
        texts
    };
    assert_eq!(cells, ["Name", "Ada", "Ada from tab A", "Ada from tab B"]);
    assert!(find(&browser, "#details-form")
        .await
        .is_displayed()
        .await
        .is_ok_and(|d| !d));
    browser
        .execute(
            "document.getElementById('details-h').scrollIntoView();",
            vec![],
        )
        .await
        .expect("scroll");
    screenshot(&browser, "6-details-conflict").await;

    // Keep B's name; the address B changed rides along; saved as version 3.
    find(&browser, "#conflict-save")
        .await
        .click()
        .await
        .expect("save picks");
    state_is(&browser, "Saved, version 3.").await;
    let customer = find(&browser, "#details")
        .await
        .attr("data-customer")
        .await
        .expect("attr")
        .expect("a customer id");
    // The id in the page is not a credential: without the browser's
    // session the record is not there; support reads it with its token.
    let url = format!("{page}/api/customers/{customer}");
    let stranger = reqwest::get(&url).await.expect("the API answers");
    assert_eq!(stranger.status(), 404);
    let stored: serde_json::Value = reqwest::Client::new()
        .get(&url)
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("the API answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(stored["name"], "Ada from tab B", "{stored}");
    assert_eq!(stored["address"], "2 Ring Street", "{stored}");
    assert_eq!(stored["_version"], 3, "{stored}");

    // Tab A, reloaded, shows what was saved.
    browser.switch_to_window(tab_a).await.expect("to tab A");
    browser.refresh().await.expect("reload");
    state_is(&browser, "Saved, version 3.").await;
    let name = find(&browser, "#details-name")
        .await
        .prop("value")
        .await
        .expect("value");
    assert_eq!(name.as_deref(), Some("Ada from tab B"));

    browser.close().await.expect("close the browser");
}
