//! How the front end's files are served: content types, revalidation, and which 404 a client
//! gets. What the pages do is tested in a real browser (`browser.rs`).

use crate::support::http::{get, request};
use crate::support::spawn_app;

#[tokio::test]
async fn pages_and_assets_come_with_their_content_type_and_a_revalidating_etag() {
    let app = spawn_app().await;
    let cases = [
        ("/sse/", "text/html; charset=utf-8"),
        ("/sse/test/", "text/html; charset=utf-8"),
        ("/boards/", "text/html; charset=utf-8"),
        ("/boards/7", "text/html; charset=utf-8"),
        ("/assets/feed.js", "text/javascript; charset=utf-8"),
        ("/assets/style.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ];
    for (path, content_type) in cases {
        let page = app.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(page.header("content-type"), Some(content_type), "{path}");
        assert_eq!(page.header("cache-control"), Some("no-cache"), "{path}");
        let etag = page.header("etag").expect("an ETag").to_owned();
        let again = request(app.addr, "GET", path, &[("If-None-Match", &etag)], None).await;
        assert_eq!(
            again.status, 304,
            "{path}: an unchanged file is not sent again"
        );
        assert!(again.body.is_empty(), "{path}");
        assert_eq!(again.header("etag"), Some(etag.as_str()), "{path}");
    }
    let feed = app.get("/sse/").await;
    assert!(
        feed.text().contains("/assets/feed.js"),
        "the page loads its script"
    );
    let policy = feed.header("content-security-policy").unwrap_or_default();
    assert!(policy.contains("default-src 'self'"), "{policy}");
}

#[tokio::test]
async fn a_browser_gets_an_html_404_page_while_the_api_and_other_clients_keep_the_json_404() {
    let app = spawn_app().await;
    let browser = [("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")];
    for path in ["/nowhere", "/boards/abc", "/assets/missing.js"] {
        let page = request(app.addr, "GET", path, &browser, None).await;
        assert_eq!(page.status, 404, "{path}");
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(page.text().contains("Page not found"), "{path}");
    }
    let api = request(app.addr, "GET", "/api/nothing", &browser, None).await;
    assert_eq!(
        (api.status, api.json()["error"].as_str()),
        (404, Some("not found"))
    );
    let curl = request(app.addr, "GET", "/nowhere", &[("Accept", "*/*")], None).await;
    assert_eq!(
        (curl.status, curl.json()["error"].as_str()),
        (404, Some("not found"))
    );
    let home = get(app.addr, "/").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.header("location"), Some("/sse/"));
}
