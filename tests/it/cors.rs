//! `CORS_ORIGINS`: preflights, the `Access-Control-*` headers, credentials only for listed
//! origins, a `403` for the others, and nothing of it for the gateway's own pages.

use crate::support::http::request;
use crate::support::{spawn_app, spawn_app_with};

const PAGE: &str = "https://app.example.com";

fn preflight(method: &'static str, headers: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("Origin", PAGE),
        ("Access-Control-Request-Method", method),
        ("Access-Control-Request-Headers", headers),
    ]
}

#[tokio::test]
async fn a_listed_origin_is_let_in_with_credentials_and_others_are_refused() {
    let app = spawn_app_with(&[("CORS_ORIGINS", PAGE)]).await;
    let answer = request(
        app.addr,
        "OPTIONS",
        "/api/users",
        &preflight("POST", "content-type"),
        None,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("access-control-allow-origin"), Some(PAGE));
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    let methods = answer.header("access-control-allow-methods").unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let stream = request(
        app.addr,
        "OPTIONS",
        "/sse/notifications/",
        &preflight("GET", "last-event-id"),
        None,
    )
    .await;
    assert_eq!(stream.status, 200);

    let got = request(app.addr, "GET", "/api/boards", &[("Origin", PAGE)], None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("access-control-allow-origin"), Some(PAGE));

    let other = [("Origin", "https://evil.example")];
    let refused = request(app.addr, "GET", "/api/boards", &other, None).await;
    assert_eq!(refused.status, 403);
    assert!(refused.json()["error"]
        .as_str()
        .unwrap()
        .contains("CORS_ORIGINS"));
    assert_eq!(refused.header("access-control-allow-origin"), None);

    // The gateway's own pages are not cross-origin.
    let own = format!("http://{}", app.addr);
    let ours = request(app.addr, "GET", "/api/boards", &[("Origin", &own)], None).await;
    assert_eq!(ours.status, 200);
    assert_eq!(ours.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn any_origin_is_let_in_without_credentials_and_none_without_the_setting() {
    let any = spawn_app_with(&[("CORS_ORIGINS", "*")]).await;
    let answer = request(any.addr, "GET", "/api/boards", &[("Origin", PAGE)], None).await;
    assert_eq!(answer.status, 200);
    assert!(answer.header("access-control-allow-origin").is_some());
    assert_eq!(answer.header("access-control-allow-credentials"), None);

    let off = spawn_app().await;
    let answer = request(off.addr, "GET", "/api/boards", &[("Origin", PAGE)], None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("access-control-allow-origin"), None);
    let preflight = request(
        off.addr,
        "OPTIONS",
        "/api/users",
        &preflight("POST", "content-type"),
        None,
    )
    .await;
    assert_eq!(preflight.status, 405);
}

/// Whether the `Vary` headers name `Origin`.
fn varies_with_origin(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("vary"))
        .flat_map(|(_, value)| value.split(','))
        .any(|field| field.trim().eq_ignore_ascii_case("origin"))
}

#[tokio::test]
async fn with_cors_every_answer_varies_with_origin_so_caches_keep_origins_apart() {
    let page = vec![("Origin", PAGE)];
    for setting in ["*", PAGE] {
        let app = spawn_app_with(&[("CORS_ORIGINS", setting)]).await;
        // The gateway's own pages, which never meet the filter.
        let own = format!("http://{}", app.addr);
        let cases = [
            ("GET", "/api/boards", page.clone()),
            (
                "GET",
                "/api/boards",
                vec![("Origin", "https://evil.example")],
            ),
            ("GET", "/api/boards", vec![]),
            ("GET", "/api/boards", vec![("Origin", own.as_str())]),
            ("OPTIONS", "/api/users", preflight("POST", "content-type")),
        ];
        for (method, path, headers) in cases {
            let answer = request(app.addr, method, path, &headers, None).await;
            assert!(
                varies_with_origin(&answer.headers),
                "CORS_ORIGINS={setting}: {method} {path} {headers:?}: {:?}",
                answer.headers
            );
        }
        let stream = app.sse("/sse/notifications/", &page).await;
        assert_eq!(stream.status, 200);
        assert!(
            varies_with_origin(&stream.headers),
            "CORS_ORIGINS={setting}: the stream: {:?}",
            stream.headers
        );
    }
    // Without CORS_ORIGINS no answer depends on the Origin.
    let off = spawn_app().await;
    let answer = request(off.addr, "GET", "/api/boards", &page, None).await;
    assert_eq!(answer.status, 200);
    assert!(!varies_with_origin(&answer.headers), "{:?}", answer.headers);
}

#[tokio::test]
async fn a_listed_origin_may_post_with_the_cookie_and_another_may_not() {
    const SECRET: &str = "a test secret that is long enough for HS256";
    let app = spawn_app_with(&[("CORS_ORIGINS", PAGE), ("AUTH_JWT_SECRET", SECRET)]).await;
    let token = pgsse::auth::Verifier::new(SECRET).sign(&pgsse::auth::Claims {
        sub: "root".into(),
        role: Some("admin".into()),
        exp: pgsse::auth::now() + 600,
        nbf: None,
    });
    let cookie = format!("pgsse_token={token}");
    let body = br#"{"type": "note"}"#;
    for (origin, status) in [(PAGE, 202), ("https://evil.example", 403)] {
        let headers = [
            ("Origin", origin),
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/json"),
        ];
        let sent = request(app.addr, "POST", "/api/sse/send", &headers, Some(body)).await;
        assert_eq!(sent.status, status, "{origin}: {}", sent.text());
    }
}
