//! The SSE endpoint itself: headers, first bytes, keep-alives, bad requests, clean-up and
//! shutdown.

use std::time::Duration;

use crate::support::http::{get, request};
use crate::support::{insert_board, spawn_app, spawn_app_with, WAIT};

#[tokio::test]
async fn the_stream_opens_at_once_with_sse_headers_and_is_never_compressed() {
    let app = spawn_app().await;
    let client = app
        .sse(
            "/sse/notifications/",
            &[("Accept-Encoding", "gzip, deflate, br")],
        )
        .await;
    assert_eq!(client.status, 200);
    assert_eq!(client.header("content-type"), Some("text/event-stream"));
    assert_eq!(client.header("cache-control"), Some("no-cache"));
    assert_eq!(client.header("x-accel-buffering"), Some("no"));
    assert_eq!(client.header("content-encoding"), None);
    // `connect` returned after the first two blocks, before any event was written: the
    // preamble, then who the stream is for.
    let text = client.text();
    assert!(
        text.starts_with("retry: 2000\n: pgsse stream open\n\nevent: connection\ndata: {"),
        "{text}"
    );
    let connection = client.connection.as_ref().unwrap().json();
    assert_eq!(connection["user"], serde_json::Value::Null);
    assert!(connection["client_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    assert!(connection["server_time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(client.retry, Some(2000));
}

#[tokio::test]
async fn the_path_works_without_the_trailing_slash() {
    let app = spawn_app().await;
    let mut client = app.sse("/sse/notifications", &[]).await;
    assert_eq!(client.status, 200);
    insert_board(&app.sql().await, "alice", "b").await;
    assert_eq!(client.next_event().await.event, "newBoard");
}

#[tokio::test]
async fn an_idle_stream_gets_keep_alive_comments() {
    let app = spawn_app_with(&[("KEEPALIVE_SECS", "1")]).await;
    let mut client = app.stream().await;
    let two_keepalives = async {
        while client
            .comments
            .iter()
            .filter(|c| *c == "keep-alive")
            .count()
            < 2
        {
            // No rows are written, so no event may arrive meanwhile.
            assert_eq!(client.event_within(Duration::from_millis(200)).await, None);
            assert!(!client.ended, "the stream stays open");
        }
    };
    tokio::time::timeout(WAIT, two_keepalives)
        .await
        .expect("keep-alive comments arrive");
    assert!(client.text().ends_with(": keep-alive\n\n"));
}

#[tokio::test]
async fn malformed_resume_ids_are_rejected_with_json_before_any_stream_bytes() {
    let app = spawn_app().await;
    for bad in ["abc", "-1", "1.5", "123456789012345678901234567890"] {
        let by_header = app
            .sse("/sse/notifications/", &[("Last-Event-ID", bad)])
            .await;
        assert_eq!(by_header.status, 400, "Last-Event-ID: {bad}");
        assert_eq!(by_header.header("content-type"), Some("application/json"));
        let by_query = request(
            app.addr,
            "GET",
            &format!("/sse/notifications/?lastEventId={bad}"),
            &[],
            None,
        )
        .await;
        assert_eq!(by_query.status, 400, "lastEventId={bad}");
        let body = by_query.json();
        assert_eq!(body["field"], "lastEventId");
        assert!(body["error"].as_str().unwrap().contains(bad), "{body}");
    }
}

#[tokio::test]
async fn clients_that_disconnect_leave_nothing_behind() {
    let app = spawn_app().await;
    for _ in 0..1_000 {
        let client = app.stream().await;
        drop(client);
    }
    let connected = || async {
        let metrics = get(app.addr, "/metrics").await.text();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("pgsse_clients_connected "))
            .map(|v| v.parse::<i64>().unwrap())
            .unwrap()
    };
    let settled = async {
        while connected().await != 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, settled)
        .await
        .expect("every stream is cleaned up after its client leaves");
    // The remaining client still gets events.
    let mut client = app.stream().await;
    insert_board(&app.sql().await, "alice", "still here").await;
    assert_eq!(client.next_event().await.json()["board_name"], "still here");
}

#[tokio::test]
async fn shutdown_ends_every_open_stream_and_the_server_exits() {
    let mut app = spawn_app().await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(app.stream().await);
    }
    app.stop().await;
    for client in &mut clients {
        assert!(client.ends_within(WAIT).await, "the stream ended cleanly");
    }
    let refused = tokio::net::TcpStream::connect(app.addr).await;
    assert!(refused.is_err(), "the server no longer accepts connections");
}

#[tokio::test]
async fn metrics_are_prometheus_text_covering_clients_events_replays_and_the_listener() {
    let app = spawn_app().await;
    let mut client = app.stream().await;
    insert_board(&app.sql().await, "alice", "counted").await;
    client.next_event().await;
    let response = get(app.addr, "/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = response.text();
    let value = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("pgsse_{name} ")));
        let line = line.unwrap_or_else(|| panic!("no {name} in\n{text}"));
        assert!(
            text.contains(&format!("# TYPE pgsse_{name} ")),
            "{name} has a TYPE line"
        );
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("clients_connected"), 1.0);
    assert_eq!(value("events_received_total"), 1.0);
    assert_eq!(value("frames_delivered_total"), 1.0);
    assert_eq!(value("listener_up"), 1.0);
    assert_eq!(value("event_table_rows"), 1.0);
    for name in [
        "notifications_received_total",
        "replayed_from_ring_total",
        "replayed_from_table_total",
        "lag_resyncs_total",
        "forced_disconnects_total",
        "listener_reconnects_total",
        "seconds_since_last_notification",
        "notification_queue_usage",
        "event_table_bytes",
    ] {
        assert!(value(name) >= 0.0);
    }
}
