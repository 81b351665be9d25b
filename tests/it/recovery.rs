//! The listener never gives up: a terminated backend, a PostgreSQL restart and a half-open
//! connection all end with every committed event delivered, once and in order.

use std::sync::Arc;
use std::time::Duration;

use crate::support::checker::{check, Recorder};
use crate::support::pg::{self, Cluster};
use crate::support::{
    connect, fresh_database, insert_board, metric, newest_event, spawn_app, spawn_app_on,
    spawn_app_through_proxy, spawn_app_unready, spawn_writer, TestApp, WAIT,
};

const STREAM: &str = "/sse/notifications/";

async fn wait_ready_is(app: &TestApp, status: u16) {
    let wait = async {
        while app.get("/readyz").await.status != status {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("/readyz did not answer {status} in time"));
}

#[tokio::test]
async fn terminating_the_listener_backend_during_a_burst_of_inserts_loses_nothing() {
    let app = spawn_app().await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Recorder::connect(app.addr, STREAM, Some(0)).await);
    }
    let writer = spawn_writer(&app.database_url, "w", 1000, Duration::ZERO);
    let sql = app.sql().await;
    let mut killed_pid = 0;
    for round in 1..=3 {
        while newest_event(&sql).await < round * 200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The listener's current backend: a new one each round, once it has reconnected.
        let find = async {
            loop {
                let rows = sql
                    .query(
                        "select pid from pg_stat_activity \
                         where application_name = 'pgsse listener' and datname = current_database()",
                        &[],
                    )
                    .await;
                if let Some(pid) = rows.first().map(|r| r.get::<_, i32>(0)) {
                    if pid != killed_pid {
                        return pid;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        killed_pid = tokio::time::timeout(WAIT, find)
            .await
            .expect("the listener reconnects");
        let killed: bool = sql
            .one("select pg_terminate_backend($1)", &[&killed_pid])
            .await
            .get(0);
        assert!(killed, "the listener's backend was terminated");
    }
    wait_ready_is(&app, 200).await;
    writer.await.unwrap();
    let through = newest_event(&sql).await;
    for (i, client) in clients.iter_mut().enumerate() {
        client.read_through(through).await;
        check(&sql, client, 0, through)
            .await
            .assert_clean(&format!("client {i}"));
    }
    assert!(metric(&app, "listener_reconnects_total").await >= 3.0);
}

#[tokio::test]
async fn a_postgres_crash_and_restart_mid_stream_loses_nothing() {
    let cluster = Arc::new(tokio::task::spawn_blocking(Cluster::start).await.unwrap());
    let url = fresh_database(&cluster).await;
    let app = spawn_app_on(&url, &[]).await;
    let mut early = Recorder::connect(app.addr, STREAM, Some(0)).await;
    let writer = spawn_writer(&url, "w", 300, Duration::from_millis(3));
    early.read(50).await;

    let stopping = cluster.clone();
    tokio::task::spawn_blocking(move || stopping.stop_immediate())
        .await
        .unwrap();
    wait_ready_is(&app, 503).await;
    // Connecting while the database is down still opens a stream (never a 5xx).
    let mut late = Recorder::connect(app.addr, STREAM, Some(0)).await;
    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start_server())
        .await
        .unwrap();

    writer.await.unwrap();
    wait_ready_is(&app, 200).await;
    let sql = connect(&url).await;
    let through = newest_event(&sql).await;
    for (name, client) in [("early", &mut early), ("late", &mut late)] {
        client.read_through(through).await;
        check(&sql, client, 0, through).await.assert_clean(name);
    }
}

#[tokio::test]
async fn a_half_open_listener_connection_is_detected_and_replaced() {
    let (app, proxy) = spawn_app_through_proxy().await;
    let url = app.database_url.clone();
    let mut client = Recorder::connect(app.addr, STREAM, Some(0)).await;
    let sql = connect(&url).await;
    for i in 0..5 {
        insert_board(&sql, "alice", &format!("before {i}")).await;
    }
    client.read(5).await;

    proxy.freeze_open_connections();
    let frozen_at = tokio::time::Instant::now();
    for i in 0..5 {
        insert_board(&sql, "alice", &format!("during {i}")).await;
    }
    // Nothing reaches the listener now; it must notice on its own and reconnect.
    client.read(5).await;
    println!(
        "recovered from a half-open connection in {:?}",
        frozen_at.elapsed()
    );
    let through = newest_event(&sql).await;
    check(&sql, &client, 0, through)
        .await
        .assert_clean("client");
    assert!(metric(&app, "listener_reconnects_total").await >= 1.0);
}

/// A PostgreSQL backend stopped with SIGSTOP (its socket stays open and says nothing, as a
/// frozen network path), continued when dropped.
struct Stopped(i32);

impl Stopped {
    fn signal(pid: i32, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    fn new(pid: i32) -> Stopped {
        Stopped::signal(pid, "-STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        Stopped::signal(self.0, "-CONT");
    }
}

#[tokio::test]
async fn a_frozen_listening_connection_is_replaced_while_the_table_still_delivers() {
    let app = spawn_app().await;
    let mut client = Recorder::connect(app.addr, STREAM, Some(0)).await;
    let sql = app.sql().await;
    insert_board(&sql, "alice", "before").await;
    client.read(1).await;

    // Only the connection that LISTENs goes silent; the one that reads the table still works.
    let pid: i32 = sql
        .one(
            "select pid from pg_stat_activity \
             where application_name = 'pgsse listener' and datname = current_database()",
            &[],
        )
        .await
        .get(0);
    let _stopped = Stopped::new(pid);
    for i in 0..3 {
        insert_board(&sql, "alice", &format!("during {i}")).await;
    }
    client.read(3).await;
    // The listener notices that its listening connection said nothing, and replaces it.
    let replaced = async {
        while metric(&app, "listener_reconnects_total").await < 1.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, replaced)
        .await
        .expect("the frozen listening connection is replaced");
    wait_ready_is(&app, 200).await;
    insert_board(&sql, "alice", "after").await;
    client.read(1).await;
    let through = newest_event(&sql).await;
    check(&sql, &client, 0, through)
        .await
        .assert_clean("client");
}

#[tokio::test]
async fn a_listener_reconnecting_through_a_frozen_proxy_gives_up_on_the_handshake_and_retries() {
    let (app, proxy) = spawn_app_through_proxy().await;
    let url = app.database_url.clone();
    let mut client = Recorder::connect(app.addr, STREAM, Some(0)).await;
    let sql = connect(&url).await;
    insert_board(&sql, "alice", "before").await;
    client.read(1).await;

    // The proxy accepts TCP connections but answers nothing, as a frozen pooler would.
    proxy.freeze();
    insert_board(&sql, "alice", "during").await;
    let reconnecting = async {
        while proxy.held() == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, reconnecting)
        .await
        .expect("the listener notices the silence and reconnects");
    // The connection it opened during the freeze stays frozen; only a new one gets through.
    proxy.thaw();
    insert_board(&sql, "alice", "after").await;
    client.read(2).await;
    let through = newest_event(&sql).await;
    check(&sql, &client, 0, through)
        .await
        .assert_clean("client");
}

#[tokio::test]
async fn the_listener_reads_what_was_committed_while_it_was_away() {
    let app = spawn_app().await;
    let mut client = Recorder::connect(app.addr, STREAM, Some(0)).await;
    let sql = app.sql().await;
    insert_board(&sql, "alice", "first").await;
    client.read(1).await;
    // Kill the listener and commit rows before it can possibly be back.
    sql.exec(
        "begin; \
         select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'pgsse listener' and datname = current_database(); \
         insert into board(name, creator_id) select 'gap' || g, u.id from generate_series(1, 50) g, app_user u; \
         commit",
    )
    .await;
    let through = newest_event(&sql).await;
    client.read_through(through).await;
    check(&sql, &client, 0, through)
        .await
        .assert_clean("client");
}

/// `/readyz` until it answers 503 with a reason containing `says`.
async fn not_ready_saying(app: &TestApp, says: &str) -> String {
    let wait = async {
        loop {
            let ready = app.get("/readyz").await;
            if ready.status == 503 {
                let reason = ready.json()["reason"].as_str().unwrap_or("").to_owned();
                if reason.contains(says) {
                    return reason;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("/readyz did not say {says:?} in time"))
}

#[tokio::test]
async fn a_gateway_started_before_its_database_exists_serves_and_delivers_once_it_appears() {
    let cluster = pg::shared();
    let url = cluster.url("late_arrival");
    let app = spawn_app_unready(&url, &[("KEEPALIVE_SECS", "1")]).await;
    assert_eq!(app.get("/healthz").await.status, 200);
    let reason = not_ready_saying(&app, "does not exist").await;
    assert!(reason.contains("late_arrival"), "{reason}");
    assert!(reason.contains("create the database"), "{reason}");
    // A browser's EventSource gives up for good on anything but a 200, so the stream opens.
    let mut stream = app.stream().await;
    assert_eq!(
        stream.last_event_id, None,
        "no position before the database is there"
    );
    let mut resumed = app.sse(STREAM, &[("Last-Event-ID", "0")]).await;
    assert_eq!(resumed.status, 200);

    // Five seconds without a database: the stream stays open on keep-alives alone.
    assert_eq!(stream.event_within(Duration::from_secs(5)).await, None);
    assert!(!stream.ended);
    assert!(
        stream
            .comments
            .iter()
            .filter(|c| *c == "keep-alive")
            .count()
            >= 3
    );
    let admin = connect(&cluster.url("postgres")).await;
    admin.exec("create database late_arrival").await;
    app.wait_ready().await;
    let sql = connect(&url).await;
    let board = insert_board(&sql, "alice", "after the database appeared").await;
    for client in [&mut stream, &mut resumed] {
        let event = client.next_event().await;
        assert_eq!(event.json()["board_id"], board);
        assert_eq!(event.id(), 1);
    }
}

#[tokio::test]
async fn with_nothing_listening_at_the_database_address_readyz_says_so_and_health_answers() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{closed}/nothing");
    let app = spawn_app_unready(&url, &[]).await;
    assert_eq!(app.get("/healthz").await.status, 200);
    let reason = not_ready_saying(&app, "refused").await;
    assert!(
        reason.contains(&format!(
            "nothing accepts connections at 127.0.0.1:{closed}/nothing"
        )),
        "{reason}"
    );
    // The API says the database is unavailable, rather than failing some other way.
    assert_eq!(app.get("/api/boards").await.status, 503);
}

#[tokio::test]
async fn a_stream_opened_while_the_database_is_unreachable_gets_every_event_committed_after_it_opened(
) {
    let cluster = pg::shared();
    let url = fresh_database(cluster).await;
    // The database is migrated and holds an event from before.
    let mut first = spawn_app_on(&url, &[]).await;
    let sql = connect(&url).await;
    insert_board(&sql, "alice", "before").await;
    first.stop().await;
    // A gateway starts where the log stood a second before it started (the time a commit takes
    // to be seen), so this event must be older than that to be left out.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // A gateway that cannot reach it: streams open all the same, with no position yet.
    let proxy = crate::support::proxy::Proxy::start(cluster.port).await;
    proxy.refuse();
    let through = url.replace(&format!(":{}/", cluster.port), &format!(":{}/", proxy.port));
    let mut app = spawn_app_unready(&through, &[]).await;
    app.database_url = url.clone();
    let mut streams = [app.stream().await, app.stream().await];

    // Committed after the streams opened, while their gateway is away from the database.
    for i in 1..=3 {
        insert_board(&sql, "alice", &format!("while away {i}")).await;
    }
    proxy.forward();
    app.wait_ready().await;
    insert_board(&sql, "alice", "live").await;
    for stream in &mut streams {
        let mut names = Vec::new();
        for _ in 0..4 {
            names.push(stream.next_event().await.json()["board_name"].clone());
        }
        assert_eq!(
            names,
            ["while away 1", "while away 2", "while away 3", "live"],
            "nothing committed after the stream opened is missed, nothing before it is sent"
        );
    }
}
