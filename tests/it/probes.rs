//! What probing the gateway found, each fixed: a token valid for ever, HEAD and 405's `Allow`,
//! duplicated headers, misspelled stream parameters, cross-site requests carrying the cookie,
//! and client and session targets that belong to their user.

use std::time::Duration;

use serde_json::json;

use crate::support::http::{get, request};
use crate::support::{metric, spawn_app, spawn_app_with, WAIT};

const STREAM: &str = "/sse/notifications/";
const SECRET: &str = "a test secret that is long enough for HS256";

fn token(user: &str, admin: bool, exp: u64) -> String {
    pgsse::auth::Verifier::new(SECRET).sign(&pgsse::auth::Claims {
        sub: user.into(),
        role: admin.then(|| "admin".into()),
        exp,
        nbf: None,
    })
}

fn in_an_hour() -> u64 {
    pgsse::auth::now() + 3600
}

#[tokio::test]
async fn a_token_that_never_expires_opens_a_stream_and_leaves_no_connection_behind() {
    let app = spawn_app_with(&[("AUTH_JWT_SECRET", SECRET)]).await;
    let forever = token("alice", false, u64::MAX);
    let before = metric(&app, "connections_open").await;
    let mut stream = app
        .sse(&format!("{STREAM}?access_token={forever}"), &[])
        .await;
    assert_eq!(stream.status, 200);
    crate::support::insert_board(&app.sql().await, "alice", "forever").await;
    assert_eq!(stream.next_event().await.json()["board_name"], "forever");
    drop(stream);
    let gone = async {
        while metric(&app, "clients_connected").await != 0.0
            || metric(&app, "connections_open").await > before
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, gone)
        .await
        .expect("the stream and its connection are gone");
}

#[tokio::test]
async fn head_answers_as_get_without_a_body_and_405_says_what_is_allowed() {
    let app = spawn_app().await;
    for path in ["/healthz", "/api/boards", "/metrics", "/sse/"] {
        let got = get(app.addr, path).await;
        let head = request(app.addr, "HEAD", path, &[], None).await;
        assert_eq!(head.status, got.status, "HEAD {path}");
        assert_eq!(
            head.header("content-type"),
            got.header("content-type"),
            "HEAD {path}"
        );
        assert!(head.body.is_empty(), "HEAD {path} has no body");
    }
    let head = request(app.addr, "HEAD", STREAM, &[], None).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert!(head.body.is_empty());
    // HEAD on the stream opened none.
    assert_eq!(metric(&app, "clients_connected").await, 0.0);
    let cases = [
        ("DELETE", "/api/boards", "GET, HEAD, POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("PUT", STREAM, "GET, HEAD"),
        ("GET", "/api/sse/send", "POST"),
    ];
    for (method, path, allow) in cases {
        let response = request(app.addr, method, path, &[], None).await;
        assert_eq!(response.status, 405, "{method} {path}");
        assert_eq!(response.header("allow"), Some(allow), "{method} {path}");
        assert!(response.json()["error"].as_str().unwrap().contains(allow));
    }
}

/// A response's headers, names in lower case, in order, but its date and the framing of its
/// connection (`Transfer-Encoding`, which a HEAD may leave out, and `Connection`): what a HEAD
/// must share with its GET.
fn answer_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    let framing = ["date", "transfer-encoding", "connection"];
    let mut headers: Vec<_> = headers
        .iter()
        .map(|(name, value)| (name.to_lowercase(), value.clone()))
        .filter(|(name, _)| !framing.contains(&name.as_str()))
        .collect();
    headers.sort();
    headers
}

#[tokio::test]
async fn head_on_the_stream_is_refused_where_the_get_is_and_answers_its_headers() {
    let app = spawn_app_with(&[("AUTH_JWT_SECRET", SECRET), ("MAX_STREAMS", "1")]).await;
    let alice = token("alice", false, in_an_hour());
    let mut refused = vec![
        (STREAM.to_owned(), 401),
        (format!("{STREAM}?access_token=not.a.token"), 401),
        (format!("{STREAM}?access_token={alice}&board_id=x"), 400),
        (format!("{STREAM}?access_token={alice}&boardId=7"), 400),
    ];
    let open = format!("{STREAM}?access_token={alice}");
    let head = request(app.addr, "HEAD", &open, &[], None).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let stream = app.sse(&open, &[]).await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        answer_headers(&head.headers),
        answer_headers(&stream.headers)
    );
    // MAX_STREAMS=1: the stream above is the only one the gateway serves.
    refused.push((open, 503));
    for (path, status) in refused {
        let got = request(app.addr, "GET", &path, &[], None).await;
        let head = request(app.addr, "HEAD", &path, &[], None).await;
        assert_eq!(got.status, status, "GET {path}: {}", got.text());
        assert_eq!(head.status, status, "HEAD {path}");
        assert_eq!(
            answer_headers(&head.headers),
            answer_headers(&got.headers),
            "HEAD {path}"
        );
        assert!(head.body.is_empty(), "HEAD {path} has no body");
    }
    drop(stream);
}

#[tokio::test]
async fn two_last_event_id_or_authorization_headers_are_a_400_naming_the_header() {
    let app = spawn_app_with(&[("AUTH_JWT_SECRET", SECRET)]).await;
    let alice = format!("Bearer {}", token("alice", true, in_an_hour()));
    let bob = format!("Bearer {}", token("bob", true, in_an_hour()));
    let cases = [
        (
            vec![
                ("Authorization", alice.as_str()),
                ("Last-Event-ID", "1"),
                ("Last-Event-ID", "500"),
            ],
            "Last-Event-ID",
        ),
        (
            vec![
                ("Authorization", alice.as_str()),
                ("Authorization", bob.as_str()),
            ],
            "Authorization",
        ),
    ];
    for (headers, named) in cases {
        let response = request(app.addr, "GET", STREAM, &headers, None).await;
        assert_eq!(response.status, 400, "{headers:?}");
        assert_eq!(response.json()["field"], named);
        let listing = request(app.addr, "GET", "/api/sse/clients", &headers, None).await;
        if named == "Authorization" {
            assert_eq!(listing.status, 400, "the API reads the header the same way");
        }
    }
}

#[tokio::test]
async fn a_misspelled_stream_parameter_is_a_400_naming_the_right_one() {
    let app = spawn_app().await;
    for (query, right) in [
        ("boardId=7", "board_id"),
        ("event=newBoard", "events"),
        ("lastEventID=3", "lastEventId"),
        ("access-token=x", "access_token"),
    ] {
        let response = get(app.addr, &format!("{STREAM}?{query}")).await;
        assert_eq!(response.status, 400, "{query}");
        assert_eq!(response.json()["field"], right, "{query}");
        let message = response.json()["error"].as_str().unwrap().to_owned();
        assert!(
            message.contains(&format!("did you mean {right}?")),
            "{message}"
        );
    }
    // Anything else is ignored, as cache-busters must be.
    let stream = app.sse(&format!("{STREAM}?_=1764000000&v=2"), &[]).await;
    assert_eq!(stream.status, 200);
}

#[tokio::test]
async fn the_cookie_signs_in_a_post_or_delete_only_from_the_gateways_own_pages() {
    let app = spawn_app_with(&[("AUTH_JWT_SECRET", SECRET), ("DEMO_TOKENS", "1")]).await;
    let cookie = format!("pgsse_token={}", token("admin", true, in_an_hour()));
    let own = format!("http://{}", app.addr);
    let body = serde_json::to_vec(&json!({"type": "note"})).unwrap();
    let send = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let addr = app.addr;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            request(addr, "POST", "/api/sse/send", &headers, Some(&body)).await
        }
    };
    let json = ("Content-Type", "application/json".to_owned());
    // From another site: refused, whatever the body.
    let other = send(
        vec![
            ("Cookie", cookie.clone()),
            ("Origin", "https://evil.example".into()),
            json.clone(),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(other.status, 403, "{}", other.text());
    assert!(other.text().contains("gateway's own pages"));
    let no_origin = send(vec![("Cookie", cookie.clone()), json.clone()], body.clone()).await;
    assert_eq!(no_origin.status, 403);
    // A plain form post, the only kind another site can make without asking: not JSON.
    let form = send(
        vec![
            ("Cookie", cookie.clone()),
            ("Origin", own.clone()),
            ("Content-Type", "text/plain".into()),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(form.status, 415, "{}", form.text());
    // From the gateway's own page: published.
    let ours = send(
        vec![
            ("Cookie", cookie.clone()),
            ("Origin", own.clone()),
            json.clone(),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(ours.status, 202, "{}", ours.text());
    // Signing out follows the same rule.
    let out = request(
        app.addr,
        "DELETE",
        "/api/demo/token",
        &[("Cookie", &cookie), ("Origin", "https://evil.example")],
        None,
    )
    .await;
    assert_eq!(out.status, 403);
}

#[tokio::test]
async fn with_authentication_on_a_client_target_reaches_only_its_users_stream() {
    let app = spawn_app_with(&[("AUTH_JWT_SECRET", SECRET)]).await;
    let sql = app.sql().await;
    sql.exec("insert into app_user(username) values ('alice'), ('bob')")
        .await;
    let open = |user: &str| {
        let path = format!(
            "{STREAM}?clientId=tab1&access_token={}",
            token(user, false, in_an_hour())
        );
        let app = &app;
        async move { app.sse(&path, &[]).await }
    };
    let mut alice = open("alice").await;
    let mut bob = open("bob").await;
    let admin = format!("Bearer {}", token("root", true, in_an_hour()));
    let post = |target: serde_json::Value| {
        let body = serde_json::to_vec(&json!({"type": "note", "target": target})).unwrap();
        let headers = [
            ("Authorization", admin.clone()),
            ("Content-Type", "application/json".to_owned()),
        ];
        let addr = app.addr;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            request(addr, "POST", "/api/sse/send", &headers, Some(&body)).await
        }
    };
    let refused = post(json!({"clientId": "tab1"})).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.text().contains("userId"), "{}", refused.text());
    // From SQL nobody can be checked; such an event reaches no one.
    sql.exec("select pgsse.publish('note', '{\"n\": 0}', client_id => 'tab1')")
        .await;
    let sent = post(json!({"userId": "alice", "clientId": "tab1"})).await;
    assert_eq!(sent.status, 202, "{}", sent.text());
    let got = alice.next_event().await;
    assert_eq!(
        (got.event.as_str(), got.id()),
        ("note", sent.json()["id"].as_i64().unwrap())
    );
    crate::support::insert_board(&sql, "alice", "after").await;
    let next = bob.next_event().await;
    assert_eq!(
        next.event, "newBoard",
        "bob got nothing before the broadcast"
    );
}
