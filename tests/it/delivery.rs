//! Delivery under load: long transactions, big transactions, and readers that stop reading.

use std::time::Duration;

use serde_json::json;

use crate::support::checker::{check, Recorder};
use crate::support::{
    gateway_send_queue, insert_board, metric, newest_event, spawn_app, spawn_app_with, spawn_writer,
};

const STREAM: &str = "/sse/notifications/";

#[tokio::test]
async fn a_long_open_transaction_holds_back_no_one_and_its_event_comes_after_its_commit() {
    let app = spawn_app().await;
    let mut client = Recorder::connect(app.addr, STREAM, Some(0)).await;
    let sql = app.sql().await;
    insert_board(&sql, "alice", "setup").await;
    let long = app.sql().await;
    long.exec("begin; insert into board(name, creator_id) select 'long', id from app_user")
        .await;
    let writer = spawn_writer(&app.database_url, "w", 50, Duration::ZERO);
    writer.await.unwrap();
    client.read(51).await;
    let before_commit = newest_event(&sql).await;
    long.exec("commit").await;
    client.read(1).await;
    let last = client.events().last().unwrap().clone();
    assert_eq!(last.json()["board_name"], "long");
    assert!(last.id() > before_commit);
    check(&sql, &client, 0, last.id())
        .await
        .assert_clean("client");
}

#[tokio::test]
async fn open_transactions_that_make_events_hold_back_no_writer_and_a_key_finds_an_event() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    let mut client = app.stream().await;
    insert_board(&sql, "alice", "setup").await;
    assert_eq!(client.next_event().await.json()["board_name"], "setup");
    // Every documented way of making an event, each in a transaction left open.
    let open_publish = app.sql().await;
    open_publish
        .exec("begin; select pgsse.publish('note', '{\"n\": 0}', key => 'mine-1')")
        .await;
    let open_board = app.sql().await;
    open_board
        .exec("begin; insert into board(name, creator_id) select 'open', id from app_user")
        .await;
    let open_notification = app.sql().await;
    open_notification
        .exec("begin; insert into notification(user_id) select id from app_user")
        .await;

    // Meanwhile every other writer goes on (each of these waits at most WAIT).
    insert_board(&sql, "alice", "meanwhile").await;
    sql.exec("select pgsse.publish('note', '{\"n\": 1}')").await;
    let sent = app
        .post("/api/sse/send", &json!({"type": "note", "data": {"n": 2}}))
        .await;
    assert_eq!(sent.status, 202, "{}", sent.text());
    let api_id = sent.json()["id"].as_i64().expect("the API says the id");
    let published = |key: &'static str| {
        let sql = &sql;
        async move {
            sql.one("select pgsse.published($1)", &[&key])
                .await
                .get::<_, Option<i64>>(0)
        }
    };
    assert_eq!(published("mine-1").await, None, "not before its commit");
    open_publish.exec("commit").await;
    let mine = published("mine-1").await.expect("found by its key");
    assert!(mine > api_id, "ids follow commit order");
    let got: Vec<(String, i64)> = [
        client.next_event().await,
        client.next_event().await,
        client.next_event().await,
        client.next_event().await,
    ]
    .iter()
    .map(|e| (e.event.clone(), e.id()))
    .collect();
    assert_eq!(got[0].0, "newBoard");
    assert_eq!(got[2], ("note".to_owned(), api_id));
    assert_eq!(got[3], ("note".to_owned(), mine));
    open_board.exec("commit").await;
    open_notification.exec("rollback").await;
    assert_eq!(client.next_event().await.json()["board_name"], "open");

    let reused = sql
        .try_exec("select pgsse.publish('note', '{}', key => 'mine-1')")
        .await
        .unwrap_err();
    let message = reused.as_db_error().unwrap().message().to_owned();
    assert!(message.contains("already used"), "{message}");
}

#[tokio::test]
async fn five_thousand_rows_in_one_transaction_all_arrive_in_order() {
    let app = spawn_app().await;
    let mut client = Recorder::connect(app.addr, STREAM, Some(0)).await;
    let sql = app.sql().await;
    insert_board(&sql, "alice", "setup").await;
    sql.exec(
        "insert into board(name, creator_id) \
         select 'bulk' || g, u.id from generate_series(1, 5000) g, app_user u",
    )
    .await;
    let through = newest_event(&sql).await;
    client.read_through(through).await;
    assert_eq!(client.events().count(), 5001);
    check(&sql, &client, 0, through)
        .await
        .assert_clean("client");
}

#[tokio::test]
async fn a_reader_that_stops_reading_delays_no_one_and_loses_nothing() {
    let app = spawn_app_with(&[("BROADCAST_CAPACITY", "64"), ("RING_CAPACITY", "128")]).await;
    let sql = app.sql().await;
    insert_board(&sql, "alice", "setup").await;
    let mut stalled = Recorder::connect(app.addr, STREAM, Some(0)).await;
    stalled.read(1).await;
    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(Recorder::connect(app.addr, STREAM, Some(0)).await);
    }
    // About 11 MB of events: far more than socket buffers hold for a reader that stops.
    for _ in 0..20 {
        sql.exec(
            "insert into board(name, creator_id) \
             select repeat('x', 1000) || g, u.id from generate_series(1, 500) g, app_user u",
        )
        .await;
    }
    let through = newest_event(&sql).await;
    // The others get everything while the stalled reader has not read a byte.
    let mut done = Vec::new();
    for reader in readers {
        done.push(tokio::spawn(async move {
            let mut reader = reader;
            reader.read_through(through).await;
            reader
        }));
    }
    for (i, reader) in done.into_iter().enumerate() {
        let reader = reader.await.unwrap();
        check(&sql, &reader, 0, through)
            .await
            .assert_clean(&format!("reader {i}"));
    }
    // The stalled stream holds no more than its send buffer in the kernel (STREAM_SEND_BUFFER,
    // 64 KiB, which the kernel doubles; 3.8 MB without it); the rest waits in the ring and the
    // table.
    // Once its socket is full (the reader's own buffer fills first; that takes a moment when the
    // machine is busy), and never more than that.
    let full = async {
        loop {
            let queued =
                gateway_send_queue(app.addr, stalled.local_addr()).expect("the stalled stream");
            if queued >= 16 * 1024 {
                return queued;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let queued = tokio::time::timeout(crate::support::WAIT, full)
        .await
        .expect("the stalled stream's socket fills");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued = queued.max(gateway_send_queue(app.addr, stalled.local_addr()).unwrap_or(0));
    // Linux lets one write go past a full buffer by up to a segment of 64 KiB: at most 192 KiB.
    assert!(
        queued <= 192 * 1024,
        "{queued} bytes queued for the stalled reader"
    );
    stalled.read_through(through).await;
    check(&sql, &stalled, 0, through)
        .await
        .assert_clean("the stalled reader");
    assert!(
        metric(&app, "lag_resyncs_total").await + metric(&app, "forced_disconnects_total").await
            >= 1.0
    );
    assert!(metric(&app, "replayed_from_table_total").await > 0.0);
}
