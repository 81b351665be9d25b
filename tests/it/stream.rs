//! The SSE endpoint itself: headers, first bytes, keep-alives, bad requests, clean-up and
//! shutdown.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::support::http::{expect_head, get, request};
use crate::support::sse::SseClient;
use crate::support::{insert_board, metric, spawn_app, spawn_app_with, WAIT};

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
        text.starts_with(": pgsse stream open\nid:0\nretry:2000\n\nevent:connection\ndata:{"),
        "{text}"
    );
    let connection = client.connection.as_ref().unwrap().json();
    assert_eq!(connection["user"], serde_json::Value::Null);
    assert_eq!(connection["authenticated"], false);
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
async fn a_stream_opened_on_a_kept_alive_connection_is_served_the_same_way() {
    let app = spawn_app().await;
    let mut fresh = app.stream().await;
    let mut kept = SseClient::connect_after(app.addr, "/healthz", "/sse/notifications/").await;
    assert_eq!(kept.status, 200);
    for name in [
        "content-type",
        "cache-control",
        "x-accel-buffering",
        "transfer-encoding",
    ] {
        assert_eq!(kept.header(name), fresh.header(name), "{name}");
    }
    assert_eq!(kept.header("transfer-encoding"), Some("chunked"));
    insert_board(&app.sql().await, "alice", "kept").await;
    let (a, b) = (kept.next_event().await, fresh.next_event().await);
    assert_eq!(a, b);
    assert_eq!(a.json()["board_name"], "kept");
}

#[tokio::test]
async fn a_request_head_in_pieces_or_of_any_size_opens_the_stream() {
    let app = spawn_app().await;
    // Sent in two writes, with a pause between them.
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(b"GET /sse/notifications/ HT")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    socket
        .write_all(b"TP/1.1\r\nHost: x\r\nLast-Event-ID: 0\r\n\r\n")
        .await
        .unwrap();
    let mut reader = BufReader::new(socket);
    let (status, _) = expect_head(&mut reader).await;
    assert_eq!(status, 200);
    // Heads of 3 KiB and of 40 KiB (more than the gateway reads before handing over to hyper).
    for size in [3 * 1024, 40 * 1024] {
        let cookie = format!("big={}", "x".repeat(size));
        let mut client = app
            .sse("/sse/notifications/", &[("Cookie", cookie.as_str())])
            .await;
        assert_eq!(client.status, 200, "a {size}-byte cookie");
        let name = format!("after a {size}-byte head");
        insert_board(&app.sql().await, "alice", &name).await;
        assert_eq!(
            client.next_event().await.json()["board_name"],
            name.as_str()
        );
    }
}

#[tokio::test]
async fn an_http_1_0_client_gets_the_stream_unchunked_until_the_connection_closes() {
    let mut app = spawn_app().await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(b"GET /sse/notifications/ HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut reader = BufReader::new(socket);
    let (status, headers) = expect_head(&mut reader).await;
    assert_eq!(status, 200);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("content-type"), Some("text/event-stream"));
    // HTTP/1.0 has no chunked encoding: the body ends when the connection closes.
    assert!(matches!(header("connection"), None | Some("close")));
    assert_eq!(header("transfer-encoding"), None);
    let mut body = Vec::new();
    let read_until = async |reader: &mut BufReader<TcpStream>, body: &mut Vec<u8>, want: &str| {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let read = async {
            while !text(body).contains(want) {
                let mut buf = [0u8; 4096];
                let n = reader.read(&mut buf).await.expect("read");
                assert!(n > 0, "the stream closed before {want:?}: {}", text(body));
                body.extend_from_slice(&buf[..n]);
            }
        };
        timeout(WAIT, read).await.expect("in time");
    };
    read_until(&mut reader, &mut body, "event:connection\n").await;
    insert_board(&app.sql().await, "alice", "old client").await;
    read_until(&mut reader, &mut body, "\"board_name\":\"old client\"").await;
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(text.starts_with(": pgsse stream open\n"), "{text}");
    assert!(text.contains("\nevent:newBoard\n"), "{text}");
    app.stop().await;
    let mut rest = Vec::new();
    timeout(WAIT, reader.read_to_end(&mut rest))
        .await
        .expect("the connection closes at shutdown")
        .expect("read to the end");
}

#[tokio::test]
async fn beyond_max_connections_streams_get_503_while_health_and_the_api_still_answer() {
    let app = spawn_app_with(&[("MAX_CONNECTIONS", "2")]).await;
    let mut first = app.stream().await;
    // The second stream over a bare socket, so that the test can tell when the gateway has let
    // it go.
    let mut second = TcpStream::connect(app.addr).await.unwrap();
    let get = format!(
        "GET /sse/notifications/ HTTP/1.1\r\nHost: {}\r\n\r\n",
        app.addr
    );
    second.write_all(get.as_bytes()).await.unwrap();
    let mut second = BufReader::new(second);
    assert_eq!(expect_head(&mut second).await.0, 200);
    let refused = request(
        app.addr,
        "GET",
        "/sse/notifications/",
        &[("Accept", "text/event-stream")],
        None,
    )
    .await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("5"));
    assert_eq!(refused.header("content-type"), Some("application/json"));
    let error = refused.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("maximum of 2 connections (MAX_CONNECTIONS)"),
        "{error}"
    );
    // A probe, a scrape and the API are answered while the streams hold every slot.
    assert_eq!(app.get("/healthz").await.status, 200);
    let metrics = app.get("/metrics").await;
    for line in [
        "pgsse_connections_max 2\n",
        "pgsse_streams_refused_total 1\n",
    ] {
        assert!(metrics.text().contains(line), "{}", metrics.text());
    }
    assert_eq!(app.get("/api/boards").await.status, 200);
    // The open streams, and the listener's own database connection, are unaffected.
    insert_board(&app.sql().await, "alice", "capped").await;
    assert_eq!(first.next_event().await.json()["board_name"], "capped");
    // The second client leaves; once the gateway has closed its side too, the slot is free.
    second.get_mut().shutdown().await.unwrap();
    let mut rest = Vec::new();
    timeout(WAIT, second.read_to_end(&mut rest))
        .await
        .expect("the gateway closes a stream whose client left")
        .unwrap();
    // The slot is free once the gateway counts only the first stream's connection and the
    // scrape's own.
    let freed = async {
        while metric(&app, "connections_open").await != 2.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    timeout(WAIT, freed)
        .await
        .expect("the gateway lets the connection go");
    // The next stream is served, though the gateway was waiting for a connection while full.
    let mut third = app.sse("/sse/notifications/", &[]).await;
    assert_eq!(third.status, 200);
    insert_board(&app.sql().await, "alice", "served").await;
    assert_eq!(third.next_event().await.json()["board_name"], "served");
}

#[tokio::test]
async fn when_the_reserve_beyond_max_connections_is_taken_too_new_connections_wait() {
    let app = spawn_app_with(&[("MAX_CONNECTIONS", "1")]).await;
    let _stream = app.stream().await;
    // Connections that send nothing hold the whole reserve (each for up to its 5 s to send a
    // request head); they are accepted in order, before the probe below.
    let mut silent = Vec::new();
    for _ in 0..pgsse::server::RESERVE {
        silent.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let addr = app.addr;
    let probe = tokio::spawn(async move { get(addr, "/healthz").await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !probe.is_finished(),
        "no connection is served beyond MAX_CONNECTIONS and the reserve"
    );
    drop(silent);
    let probe = timeout(WAIT, probe)
        .await
        .expect("served once the reserve is free")
        .unwrap();
    assert_eq!(probe.status, 200);
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
    // One stream on a connection that served a request first, which hyper serves.
    clients.push(SseClient::connect_after(app.addr, "/healthz", "/sse/notifications/").await);
    app.stop().await;
    for client in &mut clients {
        assert!(client.ends_within(WAIT).await, "the stream ended");
        assert!(client.ended_cleanly, "the body ended with its last chunk");
    }
    let refused = tokio::net::TcpStream::connect(app.addr).await;
    assert!(refused.is_err(), "the server no longer accepts connections");
}

#[tokio::test]
async fn metrics_are_prometheus_text_covering_clients_events_replays_and_the_listener() {
    let app = spawn_app().await;
    let mut client = app.stream().await;
    let inserted = Instant::now();
    insert_board(&app.sql().await, "alice", "counted").await;
    client.next_event().await;
    let response = get(app.addr, "/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
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
    // The stream's connection and this request's, at least.
    assert!(value("connections_open") >= 2.0);
    assert!(value("connections_max") >= 2.0);
    // The event came by notification; nothing was replayed, nobody lagged or was cut off, and
    // the listener never lost its connection: each counter counts its own thing.
    assert_eq!(value("notifications_received_total"), 1.0);
    for name in [
        "replayed_from_ring_total",
        "replayed_from_table_total",
        "lag_resyncs_total",
        "forced_disconnects_total",
        "listener_reconnects_total",
    ] {
        assert_eq!(value(name), 0.0, "{name}");
    }
    // Seconds since the notification, which came after the insert began.
    let since = value("seconds_since_last_notification");
    let elapsed = inserted.elapsed().as_secs_f64();
    assert!(since <= elapsed + 0.002, "{since} s > {elapsed} s");
    // A fraction of the queue, below the limit: the event came with its notification.
    let (usage, limit) = (
        value("notification_queue_usage"),
        value("notification_queue_limit"),
    );
    assert!((0.0..limit).contains(&usage), "{usage} of {limit}");
    // Bytes: a whole number of 8 KiB pages.
    assert_eq!(value("event_table_bytes_estimate") % 8192.0, 0.0);
}

#[tokio::test]
async fn a_scrape_reads_the_event_log_size_from_the_catalog_without_touching_the_table() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    for i in 0..3 {
        insert_board(&sql, "alice", &format!("b{i}")).await;
    }
    sql.exec("analyze pgsse.event").await;
    let locker = app.sql().await;
    // A scan of the table (count(*), or anything that reads it) would wait for this lock.
    locker
        .exec("begin; lock table pgsse.event in access exclusive mode")
        .await;
    let text = get(app.addr, "/metrics").await.text();
    locker.exec("rollback").await;
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("pgsse_{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("event_table_rows_estimate"), 3.0);
    assert!(value("event_table_bytes_estimate") > 0.0);
    assert!(!text.contains("pgsse_event_table_rows "), "{text}");
}
