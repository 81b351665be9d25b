//! The nginx recipe (`deploy/nginx.conf`), run by Debian's nginx in front of gateways: TLS and
//! HTTP/2 at nginx, events at once, keep-alives through, resumes, a gateway at its cap passing
//! streams to another, and an access log without tokens.

use std::time::Duration;

use crate::support::nginx::{Nginx, RECIPE};
use crate::support::sse::SseClient;
use crate::support::tls::{certificate, curl, scratch, CurlStream};
use crate::support::{
    fresh_database, insert_board, metric, pg, spawn_app_on, spawn_app_with, WAIT,
};

#[test]
fn the_deploying_page_shows_the_recipe_as_the_file_has_it() {
    let page = include_str!("../../docs/deploying.md");
    assert!(
        page.contains(&format!("```nginx\n{RECIPE}```")),
        "docs/deploying.md's copy of deploy/nginx.conf differs from the file"
    );
}

#[tokio::test]
async fn through_nginx_events_arrive_at_once_keep_alives_pass_and_last_event_id_resumes() {
    let dir = scratch("nginx");
    let (cert, key) = certificate(&dir);
    let app = crate::support::spawn_app_with(&[("KEEPALIVE_SECS", "1")]).await;
    let nginx = Nginx::start(&[app.addr], &cert, &key, &dir.join("nginx")).await;
    let base = nginx.base();
    let how = [
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
    ];
    let health = format!("{base}/healthz");
    assert_eq!(curl(&[&how[..], &[&health]].concat()).await, "2 200");

    let stream_url = format!("{base}/sse/notifications/");
    let mut stream = CurlStream::open(&["--http2", &stream_url]);
    stream.line_with("event:connection").await;
    // Unbuffered: one small event comes through on its own, with nothing behind it.
    let sql = app.sql().await;
    insert_board(&sql, "alice", "through nginx").await;
    stream.line_with("through nginx").await;
    let id = stream.line_with("id:").await;
    // Keep-alive comments pass (KEEPALIVE_SECS=1), and the stream stays open across them.
    stream.line_with(": keep-alive").await;
    stream.line_with(": keep-alive").await;
    insert_board(&sql, "alice", "after the keep-alives").await;
    stream.line_with("after the keep-alives").await;

    // A reconnect with Last-Event-ID gets what came after it.
    let id: i64 = id.trim_start_matches("id:").trim().parse().unwrap();
    let header = format!("Last-Event-ID: {id}");
    let mut resumed = CurlStream::open(&["--http2", "-H", &header, &stream_url]);
    resumed.line_with("after the keep-alives").await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_gateway_at_its_stream_cap_sends_streams_through_nginx_to_another() {
    let dir = scratch("nginx-cap");
    let (cert, key) = certificate(&dir);
    let url = fresh_database(pg::shared()).await;
    let full = spawn_app_on(&url, &[("MAX_STREAMS", "1")]).await;
    let other = spawn_app_on(&url, &[]).await;
    // The first gateway's only stream, held directly.
    let held = SseClient::connect(full.addr, "/sse/notifications/", &[]).await;
    assert_eq!(held.status, 200);
    let nginx = Nginx::start(&[full.addr, other.addr], &cert, &key, &dir.join("nginx")).await;
    let stream_url = format!("{}/sse/notifications/", nginx.base());
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut stream = CurlStream::open(&["--http2", "-i", &stream_url]);
        let status = stream.line_with("HTTP/").await;
        assert!(status.starts_with("HTTP/2 200"), "{status}");
        stream.line_with("event:connection").await;
        streams.push(stream);
    }
    assert!(
        metric(&full, "streams_refused_total").await >= 1.0,
        "nginx tried the full gateway first, at least once: {}",
        nginx.log()
    );
    assert_eq!(metric(&other, "clients_connected").await, 4.0);
    insert_board(&other.sql().await, "alice", "to every stream").await;
    for stream in &mut streams {
        stream.line_with("to every stream").await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_access_log_shows_a_streams_path_but_never_its_access_token() {
    const SECRET: &str = "a test secret that is long enough for HS256";
    let dir = scratch("nginx-log");
    let (cert, key) = certificate(&dir);
    let app = spawn_app_with(&[("AUTH_JWT_SECRET", SECRET)]).await;
    let token = pgsse::auth::Verifier::new(SECRET).sign(&pgsse::auth::Claims {
        sub: "alice".into(),
        role: None,
        exp: pgsse::auth::now() + 600,
        nbf: None,
    });
    let nginx = Nginx::start(&[app.addr], &cert, &key, &dir.join("nginx")).await;
    let stream_url = format!("{}/sse/notifications/", nginx.base());
    // A stream, as an EventSource opens it with its token, logged once it ends ...
    let with_token = format!("{stream_url}?lastEventId=0&access_token={token}");
    let mut stream = CurlStream::open(&["--http2", &with_token]);
    stream.line_with("event:connection").await;
    drop(stream);
    // ... and one refused: the token in it has a character too many.
    let refused = format!("{stream_url}?access_token={token}x");
    let how = ["-sk", "-o", "/dev/null", "-w", "%{http_code}"];
    assert_eq!(curl(&[&how[..], &[&refused]].concat()).await, "401");
    let logged = async {
        loop {
            let log = nginx.access_log();
            if log.matches("/sse/notifications/").count() >= 2 {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let log = tokio::time::timeout(WAIT, logged)
        .await
        .unwrap_or_else(|_| panic!("nginx logged both requests: {}", nginx.access_log()));
    assert!(
        !log.contains(&token),
        "the token is in the access log: {log}"
    );
    for status in [200, 401] {
        let line = format!("\"GET /sse/notifications/ HTTP/2.0\" {status} ");
        assert!(log.contains(&line), "{line} is logged: {log}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
