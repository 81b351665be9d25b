//! Resuming with Last-Event-ID or ?lastEventId, the retention horizon, and filters.

use std::time::Duration;

use serde_json::json;

use crate::support::checker::{check, Recorder, Resume};
use crate::support::http::request;
use crate::support::{
    connect, insert_board, metric, newest_event, spawn_app, spawn_app_on, spawn_app_through_proxy,
    spawn_app_with, spawn_writer, WAIT,
};

const STREAM: &str = "/sse/notifications/";

#[tokio::test]
async fn clients_resuming_by_header_or_query_at_any_point_miss_nothing_while_writes_go_on() {
    // A small ring, so that older resume points are served from the table.
    let app = spawn_app_with(&[("RING_CAPACITY", "50")]).await;
    let writer = spawn_writer(&app.database_url, "w", 400, Duration::from_millis(2));
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let addr = app.addr;
        tasks.push(tokio::spawn(async move {
            let mut client = Recorder::connect(addr, STREAM, Some(0)).await;
            for round in 0..3u64 {
                // A different, repeatable number of events before each disconnect.
                client.read(((i * 37 + round * 11) % 45 + 1) as usize).await;
                let how = if (i + round) % 2 == 0 {
                    Resume::Header
                } else {
                    Resume::Query
                };
                client.reconnect(addr, how).await;
            }
            client
        }));
    }
    writer.await.unwrap();
    let sql = app.sql().await;
    let through = newest_event(&sql).await;
    assert!(through >= 400);
    for (i, task) in tasks.into_iter().enumerate() {
        let mut client = task.await.unwrap();
        client.read_through(through).await;
        assert_eq!(client.connections, 4);
        check(&sql, &client, 0, through)
            .await
            .assert_clean(&format!("client {i}"));
    }
}

#[tokio::test]
async fn resuming_from_before_the_retention_horizon_gets_a_resync_then_the_retained_events() {
    let app = spawn_app_with(&[
        ("RETENTION_MAX_EVENTS", "10"),
        ("PRUNE_INTERVAL_SECS", "1"),
        ("RING_CAPACITY", "5"),
    ])
    .await;
    let sql = app.sql().await;
    for i in 0..30 {
        insert_board(&sql, "alice", &format!("b{i}")).await;
    }
    let newest = newest_event(&sql).await;
    let pruned = async {
        loop {
            let row = sql
                .one("select pruned_through from pgsse.horizon", &[])
                .await;
            if row.get::<_, i64>(0) == newest - 10 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(WAIT, pruned)
        .await
        .expect("the gateway prunes on its timer");
    let horizon = newest - 10;
    let remaining: i64 = sql
        .one("select count(*) from pgsse.event", &[])
        .await
        .get(0);
    assert_eq!(remaining, 10);

    let mut client = app.sse(STREAM, &[("Last-Event-ID", "3")]).await;
    let resync = client.next_event().await;
    assert_eq!(resync.event, "resync");
    assert_eq!(resync.id(), horizon);
    let data = resync.json();
    assert_eq!(
        (
            data["reason"].clone(),
            data["last_event_id"].clone(),
            data["resumes_after"].clone()
        ),
        (json!("pruned"), json!(3), json!(horizon))
    );
    assert!(data["message"].as_str().unwrap().contains("refetch"));
    let (kinds, _) = crate::kinds::listing(&app).await;
    crate::kinds::assert_valid(&kinds, &resync);
    for id in horizon + 1..=newest {
        let event = client.next_event().await;
        assert_eq!((event.event.as_str(), event.id()), ("newBoard", id));
    }

    // Inside the retained window there is nothing to resync.
    let mut inside = app
        .sse(STREAM, &[("Last-Event-ID", &(newest - 3).to_string())])
        .await;
    let ids: Vec<i64> = [
        inside.next_event().await,
        inside.next_event().await,
        inside.next_event().await,
    ]
    .iter()
    .map(|e| e.id())
    .collect();
    assert_eq!(ids, [newest - 2, newest - 1, newest]);
}

#[tokio::test]
async fn the_header_wins_over_the_query_and_an_id_beyond_the_log_starts_live() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    insert_board(&sql, "alice", "one").await;
    insert_board(&sql, "alice", "two").await;
    let one: i64 = sql
        .one(
            "select id from pgsse.event where payload->>'board_name' = 'one'",
            &[],
        )
        .await
        .get(0);
    let path = format!("{STREAM}?lastEventId=0");
    let mut both = app.sse(&path, &[("Last-Event-ID", &one.to_string())]).await;
    assert_eq!(both.next_event().await.json()["board_name"], "two");

    let mut future = app.sse(STREAM, &[("Last-Event-ID", "1000000")]).await;
    insert_board(&sql, "alice", "three").await;
    assert_eq!(future.next_event().await.json()["board_name"], "three");

    // An empty id is no id: the client starts live, not from the beginning.
    let mut empty = app.sse(STREAM, &[("Last-Event-ID", "")]).await;
    assert_eq!(empty.status, 200);
    insert_board(&sql, "alice", "four").await;
    let first = empty.next_event().await.json()["board_name"].clone();
    assert!(first == "three" || first == "four", "{first}");
}

#[tokio::test]
async fn filters_deliver_only_matching_events_and_keep_the_resume_point_moving() {
    let app = spawn_app_with(&[("KEEPALIVE_SECS", "1")]).await;
    let sql = app.sql().await;
    let a = insert_board(&sql, "alice", "A").await;
    let b = insert_board(&sql, "alice", "B").await;
    // Resuming from B's event: the clients start exactly there, however soon after the insert
    // they connect.
    let after_b = [("Last-Event-ID", b.to_string())];
    let after_b: Vec<(&str, &str)> = after_b.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut paths = app.sse(&format!("{STREAM}?events=newPath"), &after_b).await;
    let mut board_a = app.sse(&format!("{STREAM}?board_id={a}"), &after_b).await;
    let mut boards = app
        .sse(&format!("{STREAM}?events=newBoard&board_id={b}"), &after_b)
        .await;
    let add_path = |board: i64| {
        let sql = &sql;
        async move {
            sql.query(
                "insert into path(board_id, user_id) select $1, id from app_user where username = 'alice'",
                &[&board],
            )
            .await;
        }
    };
    add_path(a).await;
    add_path(b).await;
    insert_board(&sql, "alice", "C").await;
    add_path(a).await;
    let newest = newest_event(&sql).await;

    let kinds = |events: Vec<crate::support::sse::SseEvent>| {
        events
            .iter()
            .map(|e| (e.event.clone(), e.json()["board_id"].as_i64().unwrap()))
            .collect::<Vec<_>>()
    };
    let got = vec![
        paths.next_event().await,
        paths.next_event().await,
        paths.next_event().await,
    ];
    assert_eq!(
        kinds(got),
        [
            ("newPath".into(), a),
            ("newPath".into(), b),
            ("newPath".into(), a)
        ]
    );
    let got = vec![board_a.next_event().await, board_a.next_event().await];
    assert_eq!(kinds(got), [("newPath".into(), a), ("newPath".into(), a)]);
    // Nothing after B matches `boards`, yet its position
    // moves on with the keep-alives, so a reconnect would not replay what it passed over.
    let moved = async {
        while boards.last_event_id.as_deref() != Some(&newest.to_string()) {
            assert_eq!(boards.event_within(Duration::from_millis(200)).await, None);
        }
    };
    tokio::time::timeout(WAIT, moved)
        .await
        .expect("the position reaches the newest event");
}

#[tokio::test]
async fn a_filtered_client_is_told_its_position_during_long_filtered_out_stretches() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    let start = insert_board(&sql, "alice", "start").await;
    let path = format!("{STREAM}?events=newPath&lastEventId={start}");
    let mut client = app.sse(&path, &[]).await;
    sql.exec(
        "insert into board(name, creator_id) \
         select 'bulk' || g, u.id from generate_series(1, 1200) g, app_user u",
    )
    .await;
    // The keep-alive interval is 15 s, so only the position frames can move it this far.
    let moved = async {
        while client
            .last_event_id
            .as_deref()
            .map_or(0, |id| id.parse::<i64>().unwrap())
            < start + 1000
        {
            assert_eq!(client.event_within(Duration::from_millis(200)).await, None);
        }
    };
    tokio::time::timeout(WAIT, moved)
        .await
        .expect("position frames arrive");
    let events = client.text().matches("event:").count();
    assert_eq!(
        events, 1,
        "only the connection event was sent to a newPath-only client"
    );
}

#[tokio::test]
async fn bad_stream_parameters_are_400_json_before_any_stream_byte() {
    let app = spawn_app().await;
    let cases = [
        (
            "?events=newBoard,bad%20name",
            "events",
            "allowed: newBoard, newPath",
        ),
        ("?events=resync", "events", "allowed: newBoard, newPath"),
        ("?board_id=abc", "board_id", "board_id must be"),
        ("?board_id=1.5", "board_id", "board_id must be"),
        ("?lastEventId=-1", "lastEventId", "lastEventId must be"),
    ];
    for (query, field, says) in cases {
        let response = request(app.addr, "GET", &format!("{STREAM}{query}"), &[], None).await;
        assert_eq!(response.status, 400, "{query}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        let body = response.json();
        assert_eq!(body["field"], field, "{query}");
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn a_stream_filters_on_up_to_64_event_names_and_more_is_a_400_naming_the_limit() {
    let app = spawn_app().await;
    let names = |n: usize| (1..n).map(|i| format!(",k{i}")).collect::<String>();
    let mut stream = app
        .sse(&format!("{STREAM}?events=newBoard{}", names(64)), &[])
        .await;
    assert_eq!(stream.status, 200);
    insert_board(&app.sql().await, "alice", "one of 64 kinds").await;
    assert_eq!(
        stream.next_event().await.json()["board_name"],
        "one of 64 kinds"
    );
    for n in [65, 7000] {
        let path = format!("{STREAM}?events=newBoard{}", names(n));
        let response = request(app.addr, "GET", &path, &[], None).await;
        assert_eq!(response.status, 400, "{n} names");
        assert_eq!(response.header("content-type"), Some("application/json"));
        let body = response.json();
        assert_eq!(body["field"], "events");
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains(&format!("lists {n} names")) && message.contains("at most 64"),
            "{message}"
        );
    }
}

/// Reads the next event and checks that it is the `resync` from `after` to `through`.
async fn expect_resync(client: &mut crate::support::sse::SseClient, after: i64, through: i64) {
    let resync = client.next_event().await;
    assert_eq!(resync.event, "resync", "{resync:?}");
    assert_eq!(resync.id(), through);
    let data = resync.json();
    assert_eq!(
        (data["last_event_id"].clone(), data["resumes_after"].clone()),
        (json!(after), json!(through))
    );
}

#[tokio::test]
async fn a_gateway_restarted_on_a_log_that_pruning_emptied_starts_at_the_horizon() {
    let mut first = spawn_app().await;
    let sql = first.sql().await;
    for i in 0..23 {
        insert_board(&sql, "alice", &format!("b{i}")).await;
    }
    sql.exec("select pgsse.prune('0 seconds', 0)").await;
    assert_eq!(newest_event(&sql).await, 0, "the table is empty");
    first.stop().await;

    let app = spawn_app_on(&first.database_url, &[]).await;
    assert_eq!(metric(&app, "hub_last_event_id").await, 23.0);
    let mut client = app.sse(STREAM, &[("Last-Event-ID", "5")]).await;
    expect_resync(&mut client, 5, 23).await;
    let board = insert_board(&sql, "alice", "after").await;
    let next = client.next_event().await;
    assert_eq!((next.event.as_str(), next.id()), ("newBoard", 24));
    assert_eq!(next.json()["board_id"], board);
}

#[tokio::test]
async fn a_resume_from_before_the_horizon_is_told_to_resync_even_while_the_ring_holds_the_events() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    for i in 0..10 {
        insert_board(&sql, "alice", &format!("b{i}")).await;
    }
    // Pruned by another gateway or from psql: this gateway learns it from pgsse.horizon.
    sql.exec("select pgsse.prune('1 day', 4)").await;
    let learned = async {
        while metric(&app, "event_log_pruned_through").await != 6.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, learned)
        .await
        .expect("the gateway reads the horizon");
    let mut client = app.sse(STREAM, &[("Last-Event-ID", "2")]).await;
    expect_resync(&mut client, 2, 6).await;
    for id in 7..=10 {
        assert_eq!(client.next_event().await.id(), id);
    }
    assert_eq!(metric(&app, "replayed_from_table_total").await, 0.0);

    let mut inside = app.sse(STREAM, &[("Last-Event-ID", "7")]).await;
    assert_eq!(inside.next_event().await.id(), 8);
}

#[tokio::test]
async fn live_clients_are_told_to_resync_when_events_were_pruned_while_the_listener_was_away() {
    let (app, proxy) = spawn_app_through_proxy().await;
    let url = app.database_url.clone();
    let sql = connect(&url).await;
    let mut client = app.stream().await;
    insert_board(&sql, "alice", "seen").await;
    assert_eq!(client.next_event().await.id(), 1);

    // The listener's connection goes silent; meanwhile three events commit and are pruned.
    proxy.freeze_open_connections();
    for i in 0..3 {
        insert_board(&sql, "alice", &format!("lost{i}")).await;
    }
    sql.exec("select pgsse.prune('0 seconds', 0)").await;
    expect_resync(&mut client, 1, 4).await;
    insert_board(&sql, "alice", "after").await;
    assert_eq!(client.next_event().await.id(), 5);
}

#[tokio::test]
async fn a_stream_cut_before_its_first_event_resumes_from_where_it_began() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    insert_board(&sql, "alice", "before").await;
    let first = newest_event(&sql).await;
    let published = async {
        while metric(&app, "hub_last_event_id").await != first as f64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, published)
        .await
        .expect("the gateway publishes the board");
    // A live stream (no Last-Event-ID) is told where it starts before anything else.
    let mut client = Recorder::connect(app.addr, STREAM, None).await;
    client.disconnect();
    assert_eq!(client.last_id(), first);
    for i in 0..3 {
        insert_board(&sql, "alice", &format!("while away {i}")).await;
    }
    client.reconnect(app.addr, Resume::Header).await;
    client.read(3).await;
    let through = newest_event(&sql).await;
    check(&sql, &client, first, through)
        .await
        .assert_clean("client");
}

#[tokio::test]
async fn while_events_stream_in_the_gateway_still_learns_the_horizon_every_second() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    // An event every 50 ms for 10 s: every second of it sees notifications.
    let writer = spawn_writer(&app.database_url, "w", 200, Duration::from_millis(50));
    while newest_event(&sql).await < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sql.exec("select pgsse.prune('1 day', 5)").await;
    let horizon: i64 = sql
        .one("select pruned_through from pgsse.horizon", &[])
        .await
        .get(0);
    assert!(horizon >= 15);
    let learned = async {
        while metric(&app, "event_log_pruned_through").await < horizon as f64 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, learned)
        .await
        .expect("the gateway reads the horizon while notifications flow");
    assert!(!writer.is_finished(), "the writer was still writing");
    writer.abort();
}
