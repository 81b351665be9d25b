//! Authentication: bad tokens are refused before any stream byte, roles are enforced, tokens
//! never reach the logs, streams end when their token expires, and demo sign-in.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pgsse::auth::{Claims, Verifier};
use serde_json::json;

use crate::support::http::request;
use crate::support::process::KillOnDrop;
use crate::support::{fresh_database, pg, spawn_app_with, WAIT};

const SECRET: &str = "a test secret that is long enough for HS256";

fn sign(secret: &str, user: &str, role: Option<&str>, exp_in: i64, nbf_in: Option<i64>) -> String {
    let now = pgsse::auth::now() as i64;
    Verifier::new(secret).sign(&Claims {
        sub: user.into(),
        role: role.map(Into::into),
        exp: (now + exp_in) as u64,
        nbf: nbf_in.map(|n| (now + n) as u64),
    })
}

fn unsigned(header: &str, payload: &str) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    )
}

#[tokio::test]
async fn bad_tokens_are_refused_with_json_before_any_stream_byte() {
    let app = spawn_app_with(&[("AUTH_JWT_SECRET", SECRET)]).await;
    let far = pgsse::auth::now() + 3600;
    let cases = [
        (None, "an access token is required"),
        (Some("not-a-token".to_owned()), "malformed"),
        (
            Some(sign(
                "another secret that is also long enough",
                "alice",
                None,
                600,
                None,
            )),
            "signature",
        ),
        (
            Some(unsigned(
                r#"{"alg":"none"}"#,
                &format!(r#"{{"sub":"alice","exp":{far}}}"#),
            )),
            "\"none\"",
        ),
        (Some(sign(SECRET, "alice", None, -120, None)), "expired"),
        (
            Some(sign(SECRET, "alice", None, 600, Some(300))),
            "not valid yet",
        ),
    ];
    for (token, says) in cases {
        for place in ["header", "query", "cookie"] {
            let mut path = "/sse/notifications/".to_owned();
            let mut headers = Vec::new();
            match (&token, place) {
                (None, _) => {}
                (Some(t), "header") => {
                    headers.push(("Authorization".to_owned(), format!("Bearer {t}")))
                }
                (Some(t), "query") => path.push_str(&format!("?access_token={t}")),
                (Some(t), _) => headers.push(("Cookie".to_owned(), format!("pgsse_token={t}"))),
            }
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let response = request(app.addr, "GET", &path, &headers, None).await;
            assert_eq!(
                response.status,
                401,
                "{says} in {place}: {}",
                response.text()
            );
            assert_eq!(response.header("content-type"), Some("application/json"));
            assert_eq!(response.header("www-authenticate"), Some("Bearer"));
            let message = response.json()["error"].as_str().unwrap().to_owned();
            assert!(message.contains(says), "{says} in {place}: {message}");
        }
    }
    let good = sign(SECRET, "alice", None, 600, None);
    let stream = app
        .sse(&format!("/sse/notifications/?access_token={good}"), &[])
        .await;
    assert_eq!(stream.status, 200);
    let connection = stream.connection.as_ref().unwrap().json();
    assert_eq!(connection["user"], "alice");
    assert_eq!(connection["authenticated"], true);
    let spoof = request(
        app.addr,
        "GET",
        &format!("/sse/notifications/?access_token={good}&userId=bob"),
        &[],
        None,
    )
    .await;
    assert_eq!(spoof.status, 400, "a token's user cannot be overridden");
}

#[tokio::test]
async fn sending_and_listing_streams_need_an_administrator_when_authentication_is_on() {
    let app = spawn_app_with(&[("AUTH_JWT_SECRET", SECRET)]).await;
    let body = serde_json::to_vec(&json!({"type": "notice"})).unwrap();
    let user = format!("Bearer {}", sign(SECRET, "alice", None, 600, None));
    let admin = format!("Bearer {}", sign(SECRET, "root", Some("admin"), 600, None));
    let cases = [
        (None, 401),
        (Some(user.as_str()), 403),
        (Some(admin.as_str()), 202),
    ];
    for (authorization, status) in cases {
        let mut headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|a| ("Authorization", *a))
            .collect();
        headers.push(("Content-Type", "application/json"));
        let sent = request(app.addr, "POST", "/api/sse/send", &headers, Some(&body)).await;
        assert_eq!(sent.status, status, "{}", sent.text());
        let listed = request(app.addr, "GET", "/api/sse/clients", &headers, None).await;
        assert_eq!(
            listed.status,
            if status == 202 { 200 } else { status },
            "{}",
            listed.text()
        );
    }
}

#[tokio::test]
async fn a_stream_ends_when_its_token_expires() {
    let app = spawn_app_with(&[("AUTH_JWT_SECRET", SECRET)]).await;
    let token = sign(SECRET, "alice", None, 2, None);
    let mut stream = app
        .sse(&format!("/sse/notifications/?access_token={token}"), &[])
        .await;
    assert_eq!(stream.status, 200);
    assert!(
        stream.ends_within(WAIT).await,
        "the stream ended at its token's expiry"
    );
}

#[tokio::test]
async fn demo_tokens_sign_in_only_when_enabled() {
    let off = spawn_app_with(&[("AUTH_JWT_SECRET", SECRET)]).await;
    assert_eq!(
        off.post("/api/demo/token", &json!({"username": "alice"}))
            .await
            .status,
        404
    );
    let on = spawn_app_with(&[("AUTH_JWT_SECRET", SECRET), ("DEMO_TOKENS", "1")]).await;
    let response = on
        .post("/api/demo/token", &json!({"username": "alice"}))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let token = response.json()["token"].as_str().unwrap().to_owned();
    let cookie = response.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with(&format!("pgsse_token={token};")) && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // Over plain HTTP a browser would drop a Secure cookie: it is Secure only over HTTPS (tls.rs).
    assert!(!cookie.contains("Secure"), "{cookie}");
    let cookie_header = format!("pgsse_token={token}");
    let stream = on
        .sse("/sse/notifications/", &[("Cookie", &cookie_header)])
        .await;
    assert_eq!(stream.connection.as_ref().unwrap().json()["user"], "alice");
    let signed_out = request(on.addr, "DELETE", "/api/demo/token", &[], None).await;
    assert_eq!(signed_out.status, 204);
    let cleared = signed_out.header("set-cookie").unwrap();
    assert!(
        cleared.starts_with("pgsse_token=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

#[tokio::test]
async fn tokens_never_appear_in_the_logs_even_at_the_most_verbose_level() {
    let url = fresh_database(pg::shared()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = Command::new(env!("CARGO_BIN_EXE_pgsse"))
        .env("DATABASE_URL", &url)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("AUTH_JWT_SECRET", SECRET)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut gateway = KillOnDrop::new(gateway);
    // Read the log as it is written: a full pipe would stop the gateway at its next line.
    let mut stderr = gateway.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        stderr.read_to_string(&mut log).unwrap();
        log
    });
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let ready = async {
        loop {
            if let Ok(socket) = tokio::net::TcpStream::connect(addr).await {
                drop(socket);
                if crate::support::http::get(addr, "/readyz").await.status == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, ready)
        .await
        .expect("the gateway starts");
    let token = sign(SECRET, "alice", Some("admin"), 600, None);
    let bad = format!("{token}x");
    let mut stream = crate::support::sse::SseClient::connect(
        addr,
        &format!("/sse/notifications/?access_token={token}"),
        &[],
    )
    .await;
    assert_eq!(stream.status, 200);
    let refused = request(
        addr,
        "GET",
        &format!("/sse/notifications/?access_token={bad}"),
        &[],
        None,
    )
    .await;
    assert_eq!(refused.status, 401);
    let bearer = format!("Bearer {token}");
    let body = serde_json::to_vec(&json!({"type": "hello"})).unwrap();
    let sent = request(
        addr,
        "POST",
        "/api/sse/send",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        Some(&body),
    )
    .await;
    assert_eq!(sent.status, 202);
    assert_eq!(stream.next_event().await.event, "hello");
    drop(stream);
    // SIGTERM, then read everything it logged.
    Command::new("kill")
        .arg(gateway.id().to_string())
        .status()
        .unwrap();
    let log = reader.join().unwrap();
    gateway.wait().unwrap();
    assert!(log.contains("listening on"), "the log was captured: {log}");
    let signature = token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "a token reached the log");
    assert!(
        !log.contains("access_token"),
        "a query string reached the log"
    );
}
