//! The live feed page (`/sse/`) in headless Chromium, as a new user meets it: recent history on
//! opening, events of any kind, and connection states that agree with each other, with
//! authentication on and off.

use serde_json::json;

use crate::support::browser::Browser;
use crate::support::{insert_board, spawn_app, spawn_app_with, TestApp};

/// The `board_name` of each event listed, top to bottom.
const BOARD_NAMES: &str = "return [...document.querySelectorAll('#events > li')].map((li) =>
    [...li.querySelectorAll('.fields > div')]
        .filter((row) => row.querySelector('dt').textContent === 'board_name')
        .map((row) => row.querySelector('dd').textContent)[0] ?? null)";

/// Whether the "as an administrator" box of the sign-in form can be seen.
const ADMIN_BOX_SHOWN: &str =
    "return document.querySelector('#signin [name=admin]').checkVisibility()";

fn url(app: &TestApp, path: &str) -> String {
    format!("http://{}{path}", app.addr)
}

#[tokio::test]
async fn the_feed_opens_with_the_last_twenty_events_committed_before_it_newest_first_like_live_ones(
) {
    let app = spawn_app().await;
    let sql = app.sql().await;
    for n in 1..=25 {
        insert_board(&sql, "kim", &format!("board {n:02}")).await;
    }
    let browser = Browser::start().await;
    browser.goto(&url(&app, "/sse/")).await;
    // History comes in id order, each event put on top: the newest is the last to arrive.
    browser.wait_for_item("#events", "board 25").await;
    let shown = browser.eval(BOARD_NAMES, json!([])).await;
    let expected: Vec<String> = (6..=25).rev().map(|n| format!("board {n:02}")).collect();
    assert_eq!(shown, json!(expected));
    assert!(
        browser.text("#empty").await.is_empty(),
        "no 'No events yet'"
    );
    let detail = browser.text("#state-detail").await;
    assert!(
        detail.starts_with("Connected at") && !detail.contains("eplayed"),
        "{detail}"
    );

    insert_board(&sql, "kim", "board 26").await;
    browser.wait_for_item("#events", "board 26").await;
    let shown = browser.eval(BOARD_NAMES, json!([])).await;
    assert_eq!(
        shown[0], "board 26",
        "a live event goes on top too: {shown}"
    );
    assert_eq!(shown.as_array().unwrap().len(), 21, "{shown}");
    browser.screenshot("feed-recent-history").await;
}

#[tokio::test]
async fn events_of_custom_kinds_published_over_sql_and_through_the_api_appear_in_the_feed() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    browser.goto(&url(&app, "/sse/")).await;
    browser.wait_for_text("#state", "live").await;

    let sql = app.sql().await;
    sql.exec(r#"select pgsse.publish('deploy.finished', '{"version": "v2.1"}')"#)
        .await;
    let body = json!({"type": "direct", "data": {"text": "straight from the API"}});
    let sent = app.post("/api/sse/send", &body).await;
    assert_eq!(sent.status, 202, "{}", sent.text());

    let deploy = browser.wait_for_item("#events", "v2.1").await;
    assert!(deploy.contains("deploy.finished"), "{deploy}");
    let direct = browser
        .wait_for_item("#events", "straight from the API")
        .await;
    assert!(direct.contains("direct"), "{direct}");
    browser.screenshot("feed-custom-kinds").await;
}

#[tokio::test]
async fn a_watched_tables_changes_appear_in_the_feed_with_their_rows() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    sql.exec(
        "create table orders (id int primary key, status text); \
         select pgsse.watch('orders', 'order', operations => array['insert', 'update'])",
    )
    .await;
    let browser = Browser::start().await;
    browser.goto(&url(&app, "/sse/")).await;
    browser.wait_for_text("#state", "live").await;
    sql.exec("insert into orders values (17, 'new'); update orders set status = 'paid'")
        .await;
    let update = browser.wait_for_item("#events", "paid").await;
    assert!(update.contains("order"), "{update}");
    assert!(update.contains(r#"{"id":17,"status":"paid"}"#), "{update}");
    assert!(update.contains(r#"["status"]"#), "{update}");
    let insert = browser.wait_for_item("#events", r#""status":"new""#).await;
    assert!(insert.contains("insert"), "{insert}");
    browser.screenshot("feed-watched-table").await;
}

#[tokio::test]
async fn the_administrator_box_and_the_request_to_sign_in_come_only_with_authentication_on() {
    let browser = Browser::start().await;
    let open = spawn_app().await;
    browser.goto(&url(&open, "/sse/")).await;
    browser
        .wait_for_text("#listener", "Listening to broadcasts only")
        .await;
    assert_eq!(browser.eval(ADMIN_BOX_SHOWN, json!([])).await, json!(false));

    let secret = "a browser test secret long enough for HS256";
    let app = spawn_app_with(&[("AUTH_JWT_SECRET", secret), ("DEMO_TOKENS", "1")]).await;
    browser.goto(&url(&app, "/sse/")).await;
    browser.wait_for_text("#state", "stopped").await;
    let listener = browser.text("#listener").await;
    assert!(
        listener.contains("sign in first") && !listener.contains("Listening"),
        "stopped, and the page says: {listener}"
    );
    assert_eq!(browser.eval(ADMIN_BOX_SHOWN, json!([])).await, json!(true));
    browser.screenshot("feed-auth-before-sign-in").await;

    browser.fill("#signin [name=username]", "jun").await;
    browser.click("#signin button[type=submit]").await;
    browser.wait_for_text("#listener", "Listening as jun").await;
    browser.wait_for_text("#state", "live").await;
    let detail = browser.text("#state-detail").await;
    assert!(
        detail.starts_with("Connected at") && !detail.contains("econnected"),
        "a first stream after signing in: {detail}"
    );
    assert_eq!(browser.eval(ADMIN_BOX_SHOWN, json!([])).await, json!(true));
}
