//! The front end in a real browser (headless Chromium): what a person sees on the pages while
//! rows are written over plain SQL and the gateway restarts underneath. Each test saves a
//! screenshot of each page it visits under `target/screenshots/`.

use serde_json::json;

use crate::support::browser::Browser;
use crate::support::proxy::Proxy;
use crate::support::{
    fresh_database, insert_board, pg, spawn_app, spawn_app_on, spawn_app_with, TestApp,
};

/// The paths drawn on a board page, in drawing order, as points and colour.
const PATHS: &str = "[...document.querySelectorAll('svg.board .paths polyline')]
    .map((p) => ({points: p.getAttribute('points'), colour: p.getAttribute('stroke')}))";

fn url(app: &TestApp, path: &str) -> String {
    format!("http://{}{path}", app.addr)
}

/// Starts the gateway again on `addr` while `proxy`, through which the browser reaches it,
/// refuses connections, and lets the browser through once the gateway is ready. A stream that
/// opens while a gateway's listener is still starting is told no newest event id, so the page
/// cannot tell the events it missed from live ones; on a busy machine the browser's retry every
/// 2 s often lands in that moment.
async fn restart_behind(proxy: &Proxy, database: &str, addr: &str) -> TestApp {
    proxy.refuse();
    let app = spawn_app_on(database, &[("BIND_ADDR", addr)]).await;
    proxy.forward();
    app
}

#[tokio::test]
async fn the_feed_page_goes_live_and_shows_a_board_inserted_over_sql_with_its_name_and_creator() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    browser.goto(&url(&app, "/sse/")).await;
    browser.wait_for_text("#state", "live").await;

    let sql = app.sql().await;
    let id = insert_board(&sql, "carol", "Carol's canvas").await;
    let item = browser.wait_for_item("#events", "Carol's canvas").await;
    assert!(item.contains("newBoard"), "{item}");
    assert!(item.contains("carol"), "{item}");
    assert!(item.contains(&id.to_string()), "{item}");
    let last_id = browser.text("#last-id").await;
    assert!(
        last_id.parse::<i64>().is_ok(),
        "last event id shown: {last_id:?}"
    );
    browser.screenshot("feed").await;
}

#[tokio::test]
async fn the_trigger_page_creates_a_board_that_the_feed_shows_and_shows_the_apis_message_for_bad_input(
) {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    browser.goto(&url(&app, "/sse/")).await;
    browser.wait_for_text("#state", "live").await;
    let feed = browser.open_window().await;
    browser.goto(&url(&app, "/sse/test/")).await;

    browser.fill("#user-form [name=username]", "dora").await;
    browser.click("#user-form button[type=submit]").await;
    browser
        .wait_for_text("#user-form .form-status", "Created user dora")
        .await;
    browser.fill("#board-form [name=name]", "Dora's dots").await;
    browser.fill("#board-form [name=creator]", "dora").await;
    browser.fill("#board-form [name=rows]", "4").await;
    browser.fill("#board-form [name=cols]", "6").await;
    browser
        .fill("#board-form [name=dots]", "[[0, 0], [5, 3]]")
        .await;
    browser.click("#board-form button[type=submit]").await;
    browser
        .wait_for_text("#board-form .form-status", "Created board")
        .await;
    let sql = browser.text("[data-sql=board]").await;
    assert!(sql.contains("insert into board"), "{sql}");

    // A creator that does not exist: the page shows what the API says about it.
    let bad = json!({"name": "x", "creator": "nobody", "rows": 4, "cols": 6, "dots": []});
    let answer = app.post("/api/boards", &bad).await;
    assert_eq!(answer.status, 422);
    let message = answer.json()["error"].as_str().unwrap().to_owned();
    browser.fill("#board-form [name=creator]", "nobody").await;
    browser.click("#board-form button[type=submit]").await;
    browser
        .wait_for_text("#board-form .form-status", &message)
        .await;
    browser.screenshot("trigger").await;

    browser.switch_to(&feed).await;
    let item = browser.wait_for_item("#events", "Dora's dots").await;
    assert!(item.contains("newBoard") && item.contains("dora"), "{item}");
    browser.screenshot("feed-after-trigger").await;
}

#[tokio::test]
async fn the_board_page_draws_the_dots_and_a_path_inserted_over_sql_appears_without_a_reload() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    sql.exec(
        "insert into app_user(username) values ('erin'), ('frank');
         insert into board(name, creator_id, rows, cols, dots)
         select 'Erin''s grid', id, 6, 8, '[[0, 0], [4, 3], [2, 1]]' from app_user where username = 'erin';
         insert into path(board_id, user_id, points)
         select b.id, u.id, '[[0, 0], [1, 1], [2, 1]]' from board b, app_user u where u.username = 'erin';",
    )
    .await;
    let board: i64 = sql.one("select id from board", &[]).await.get(0);
    let browser = Browser::start().await;
    browser.goto(&url(&app, &format!("/boards/{board}"))).await;
    browser.wait_for_text("#state", "live").await;
    browser.wait_for_text("h1", "Erin's grid").await;
    browser
        .wait_for_text("#summary", "An 8 × 6 grid with 3 dots, created by erin")
        .await;

    let dots = browser
        .eval(
            "return [...document.querySelectorAll('svg.board .dot')]
                .map((c) => [Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))])
                .sort((a, b) => a[0] - b[0] || a[1] - b[1]);",
            json!([]),
        )
        .await;
    assert_eq!(dots, json!([[0, 0], [2, 1], [4, 3]]));
    // The saved paths are fetched after the board itself: wait until they are drawn.
    let one = format!("const all = {PATHS}; return all.length >= 1 ? all : null;");
    let saved = browser
        .wait_for("the saved path to be drawn", &one, json!([]))
        .await;
    assert_eq!(saved.as_array().unwrap().len(), 1, "{saved}");
    assert_eq!(saved[0]["points"], "0,0 1,1 2,1");

    browser
        .eval("window.stillTheSamePage = true", json!([]))
        .await;
    sql.exec(
        "insert into path(board_id, user_id, points)
         select b.id, u.id, '[[4, 3], [3, 2], [2, 1]]' from board b, app_user u where u.username = 'frank'",
    )
    .await;
    let two = format!("const all = {PATHS}; return all.length === 2 ? all : null;");
    let drawn = browser
        .wait_for("the new path to be drawn", &two, json!([]))
        .await;
    assert_eq!(drawn[1]["points"], "4,3 3,2 2,1");
    assert_ne!(
        drawn[0]["colour"], drawn[1]["colour"],
        "each user has a colour"
    );
    let legend = browser.wait_for_text("#legend", "frank").await;
    assert!(legend.contains("erin"), "{legend}");
    let same = browser
        .eval("return window.stillTheSamePage === true", json!([]))
        .await;
    assert_eq!(same, json!(true), "the page was not reloaded");
    browser.screenshot("board").await;

    browser.resize(390, 844).await;
    browser.screenshot("board-phone").await;
    browser.goto(&url(&app, "/boards/")).await;
    browser.wait_for_item("#boards", "Erin's grid").await;
    browser.screenshot("boards-phone").await;
}

#[tokio::test]
async fn after_the_gateway_restarts_the_feed_reconnects_by_itself_and_shows_what_was_inserted_meanwhile(
) {
    let database = fresh_database(pg::shared()).await;
    let mut app = spawn_app_on(&database, &[]).await;
    let addr = app.addr.to_string();
    let proxy = Proxy::start(app.addr.port()).await;
    let browser = Browser::start().await;
    browser
        .goto(&format!("http://127.0.0.1:{}/sse/", proxy.port))
        .await;
    browser.wait_for_text("#state", "live").await;
    let sql = app.sql().await;
    insert_board(&sql, "gina", "before the restart").await;
    browser.wait_for_item("#events", "before the restart").await;

    app.stop().await;
    browser.wait_for_text("#state", "reconnecting").await;
    browser.screenshot("feed-reconnecting").await;
    insert_board(&sql, "gina", "while it was away").await;

    let _restarted = restart_behind(&proxy, &database, &addr).await;
    let item = browser.wait_for_item("#events", "while it was away").await;
    assert!(item.contains("gina"), "{item}");
    browser.wait_for_text("#state", "live").await;
    browser
        .wait_for_text("#state-detail", "replayed 1 missed event.")
        .await;
    let before = browser
        .eval(
            "return [...document.querySelectorAll('#events > li')]
                .filter((li) => li.innerText.includes('before the restart')).length",
            json!([]),
        )
        .await;
    assert_eq!(before, json!(1), "nothing was shown twice");
    browser.screenshot("feed-after-restart").await;
}

#[tokio::test]
async fn a_feed_whose_stream_drops_before_any_event_still_shows_what_was_inserted_while_it_was_away(
) {
    let database = fresh_database(pg::shared()).await;
    let mut app = spawn_app_on(&database, &[]).await;
    let addr = app.addr.to_string();
    let sql = app.sql().await;
    let proxy = Proxy::start(app.addr.port()).await;
    let browser = Browser::start().await;
    browser
        .goto(&format!("http://127.0.0.1:{}/sse/", proxy.port))
        .await;
    browser.wait_for_text("#state", "live").await;

    // No event has reached the page; only the stream's position has.
    app.stop().await;
    browser.wait_for_text("#state", "reconnecting").await;
    insert_board(&sql, "hana", "while it was away").await;
    let _restarted = restart_behind(&proxy, &database, &addr).await;
    let item = browser.wait_for_item("#events", "while it was away").await;
    assert!(item.contains("hana"), "{item}");
    // Resumed from the position, not opened afresh with recent history.
    browser
        .wait_for_text("#state-detail", "replayed 1 missed event.")
        .await;
}

#[tokio::test]
async fn a_signed_in_feed_shows_its_own_notifications_apart_and_nobody_elses() {
    let app = spawn_app().await;
    app.sql()
        .await
        .exec("insert into app_user(username) values ('hana'), ('ivan')")
        .await;
    let browser = Browser::start().await;
    browser.goto(&url(&app, "/sse/")).await;
    browser.wait_for_text("#state", "live").await;
    // Authentication is off here: the page listens for hana's notifications by name, and says
    // plainly that this is not private.
    browser.fill("#signin [name=username]", "hana").await;
    browser.click("#signin button[type=submit]").await;
    browser.wait_for_text("#signin-status", "not private").await;
    browser
        .wait_for_text("#listener", "Listening as hana")
        .await;
    let feed = browser.open_window().await;

    browser.goto(&url(&app, "/sse/test/")).await;
    // A recipient is any name, whether or not app_user has it.
    let recipients = [
        ("hana", "for hana only"),
        ("ivan", "for ivan only"),
        ("nobody", "for nobody known"),
    ];
    for (to, text) in recipients {
        browser.fill("#notify-form [name=to]", to).await;
        browser.fill("#notify-form [name=text]", text).await;
        browser.click("#notify-form button[type=submit]").await;
        browser
            .wait_for_text("#notify-form .form-status", "only streams of that user")
            .await;
        browser.fill("#notify-form [name=to]", "").await;
    }
    let sql = browser.text("[data-sql=notify]").await;
    assert!(sql.contains("select pgsse.publish('notification'"), "{sql}");
    browser
        .fill("#system-form [name=text]", "everyone hears this")
        .await;
    browser.click("#system-form button[type=submit]").await;
    browser
        .wait_for_text("#system-form .form-status", "to everyone")
        .await;
    browser.screenshot("trigger-notifications").await;

    browser.switch_to(&feed).await;
    // The broadcast was sent last, so once it is shown everything before it has been too.
    let system = browser
        .wait_for_item("#events", "everyone hears this")
        .await;
    assert!(system.contains("system"), "{system}");
    let own = browser.wait_for_item("#events", "for hana only").await;
    assert!(own.contains("for you"), "{own}");
    // The page said it was sent, and it is recorded for nobody's streams (a form's status may
    // still show the previous send's when the next is checked, so the row is waited for).
    let sql = app.sql().await;
    let recorded = async {
        let count = "select count(*) from pgsse.event where recipient = 'nobody'";
        while sql.one(count, &[]).await.get::<_, i64>(0) != 1 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(crate::support::WAIT, recorded)
        .await
        .expect("the notification for nobody known is recorded");
    let all = browser.text("#events").await;
    assert!(!all.contains("for ivan only"), "{all}");
    assert!(!all.contains("for nobody known"), "{all}");
    browser.screenshot("feed-signed-in").await;
}

#[tokio::test]
async fn with_demo_tokens_the_feed_signs_in_and_receives_notifications_over_its_cookie() {
    let secret = "a browser test secret long enough for HS256";
    let app = spawn_app_with(&[("AUTH_JWT_SECRET", secret), ("DEMO_TOKENS", "1")]).await;
    app.sql()
        .await
        .exec("insert into app_user(username) values ('jun')")
        .await;
    let browser = Browser::start().await;
    browser.goto(&url(&app, "/sse/")).await;
    // Authentication is on: without a token the page says why it has no stream.
    browser
        .wait_for_text("#state-detail", "access token is required")
        .await;
    browser.fill("#signin [name=username]", "jun").await;
    browser.click("#signin button[type=submit]").await;
    browser.wait_for_text("#signin-status", "demo token").await;
    browser.wait_for_text("#listener", "Listening as jun").await;
    browser.wait_for_text("#state", "live").await;

    let admin = pgsse::auth::Verifier::new(secret).sign(&pgsse::auth::Claims {
        sub: "root".into(),
        role: Some("admin".into()),
        exp: pgsse::auth::now() + 600,
        nbf: None,
    });
    let body = serde_json::to_vec(
        &json!({"type": "message", "data": {"text": "hi jun"}, "target": {"userId": "jun"}}),
    )
    .unwrap();
    let bearer = format!("Bearer {admin}");
    let sent = crate::support::http::request(
        app.addr,
        "POST",
        "/api/sse/send",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        Some(&body),
    )
    .await;
    assert_eq!(sent.status, 202, "{}", sent.text());
    let item = browser.wait_for_item("#events", "hi jun").await;
    assert!(
        item.contains("for you") && item.contains("message"),
        "{item}"
    );
}

#[tokio::test]
async fn at_max_connections_the_feed_says_the_gateway_is_full_and_goes_live_once_streams_leave() {
    let app = spawn_app_with(&[("MAX_CONNECTIONS", "3")]).await;
    let _staying = app.stream().await;
    let leaving = [app.stream().await, app.stream().await];
    let browser = Browser::start().await;
    // The page and its assets are served beyond the cap; its stream is refused with 503.
    browser.goto(&url(&app, "/sse/")).await;
    let detail = browser
        .wait_for_text(
            "#state-detail",
            "maximum of 3 connections (MAX_CONNECTIONS)",
        )
        .await;
    assert!(detail.contains("trying again in 5 s"), "{detail}");
    assert_ne!(browser.text("#state").await, "live");
    browser.screenshot("feed-at-capacity").await;

    drop(leaving);
    browser.wait_for_text("#state", "live").await;
    let sql = app.sql().await;
    insert_board(&sql, "erin", "room again").await;
    browser.wait_for_item("#events", "room again").await;
}

#[tokio::test]
async fn over_https_ten_tabs_of_one_origin_each_open_their_stream_and_show_a_board() {
    // Over HTTP/1.1 a browser opens at most six connections per origin, so a seventh tab's
    // stream would wait; over HTTP/2 they all share one.
    let dir = crate::support::tls::scratch("tabs");
    let (cert, key) = crate::support::tls::certificate(&dir);
    let database = fresh_database(pg::shared()).await;
    let app = crate::support::spawn_app_unready(
        &database,
        &[
            ("TLS_CERT_FILE", cert.to_str().unwrap()),
            ("TLS_KEY_FILE", key.to_str().unwrap()),
        ],
    )
    .await;
    let base = format!("https://127.0.0.1:{}", app.addr.port());
    crate::support::tls::wait_ready(&base).await;
    let browser = Browser::start().await;
    let mut tabs = Vec::new();
    for tab in 0..10 {
        if tab > 0 {
            browser.open_window().await;
        }
        browser.goto(&format!("{base}/sse/")).await;
        browser.wait_for_text("#state", "live").await;
        tabs.push(browser.window().await);
    }
    insert_board(&app.sql().await, "ines", "seen in every tab").await;
    for tab in &tabs {
        browser.switch_to(tab).await;
        browser.wait_for_item("#events", "seen in every tab").await;
    }
    let protocol = browser
        .eval(
            "return performance.getEntriesByType('navigation')[0].nextHopProtocol",
            json!([]),
        )
        .await;
    assert_eq!(protocol, json!("h2"));
    browser.screenshot("feed-https-tenth-tab").await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Serves `html` at every path from a port of its own: a page of another origin than the
/// gateway's.
async fn page_elsewhere(html: String) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let html = html.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

/// A page that opens the stream of the gateway named in its query (`?gateway=http://…`) and
/// creates a user through its API: a page of another origin than the gateway's.
const ELSEWHERE: &str = r#"<!doctype html><meta charset="utf-8"><title>elsewhere</title>
<p id="state">connecting</p><p id="posted">not yet</p><ul id="events"></ul>
<script>
const gateway = new URLSearchParams(location.search).get("gateway");
const state = document.getElementById("state");
const source = new EventSource(gateway + "/sse/notifications/");
source.addEventListener("open", () => { state.textContent = "open"; });
source.addEventListener("error", () => { state.textContent = "error " + source.readyState; });
source.addEventListener("newBoard", (event) => {
  const item = document.createElement("li");
  item.textContent = JSON.parse(event.data).board_name;
  document.getElementById("events").append(item);
});
fetch(gateway + "/api/users", {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ username: "from-elsewhere" }),
}).then((r) => { document.getElementById("posted").textContent = "status " + r.status; })
  .catch(() => { document.getElementById("posted").textContent = "blocked"; });
</script>"#;

#[tokio::test]
async fn a_page_on_another_origin_subscribes_and_posts_only_when_cors_origins_lets_it() {
    let page = page_elsewhere(ELSEWHERE.to_owned()).await;
    let allowed = spawn_app_with(&[("CORS_ORIGINS", &format!("http://{page}"))]).await;
    let closed = spawn_app().await;
    let browser = Browser::start().await;
    for (app, let_in) in [(&allowed, true), (&closed, false)] {
        browser
            .goto(&format!("http://{page}/?gateway={}", url(app, "")))
            .await;
        let sql = app.sql().await;
        if let_in {
            browser.wait_for_text("#state", "open").await;
            browser.wait_for_text("#posted", "status 201").await;
            insert_board(&sql, "jo", "seen from elsewhere").await;
            browser
                .wait_for_item("#events", "seen from elsewhere")
                .await;
            browser.screenshot("cross-origin-page").await;
        } else {
            // EventSource gives up for good on a stream it may not read (readyState 2: closed).
            browser.wait_for_text("#state", "error 2").await;
            browser.wait_for_text("#posted", "blocked").await;
        }
        let users: i64 = sql
            .one(
                "select count(*) from app_user where username = 'from-elsewhere'",
                &[],
            )
            .await
            .get(0);
        assert_eq!(users, i64::from(let_in), "let in: {let_in}");
    }
}
