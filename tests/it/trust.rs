//! Trust: only what the gateway's own functions recorded in `pgsse.event` reaches a client. A
//! notification is a hint, never proof: any role that can connect may send one.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_postgres::error::SqlState;

use crate::support::checker::{check, Recorder};
use crate::support::http::get;
use crate::support::process::KillOnDrop;
use crate::support::{
    as_role, connect, fresh_database, insert_board, metric, newest_event, pg, spawn_app,
    spawn_app_on, WAIT,
};

const STREAM: &str = "/sse/notifications/";

/// A role name of this test's own (roles are shared by every database of the cluster).
fn role_name(url: &str, role: &str) -> String {
    let database = url.rsplit('/').next().expect("a database name");
    format!("{role}_{database}")
}

#[tokio::test]
async fn forged_notifications_from_a_login_only_role_reach_no_one_and_hide_nothing() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    insert_board(&sql, "alice", "before").await;
    let start = newest_event(&sql).await;
    // Following live events from `start` on.
    let mut live = Recorder::connect(app.addr, STREAM, Some(start)).await;
    let published = async {
        while metric(&app, "hub_last_event_id").await < start as f64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    timeout(WAIT, published)
        .await
        .expect("the event before is published");

    let mallory = role_name(&app.database_url, "mallory");
    sql.exec(&format!("create role {mallory} login")).await;
    let forger = connect(&as_role(&app.database_url, &mallory)).await;
    // The next id, shaped exactly like the gateway's own notifications, then 1,000 more.
    forger
        .exec(&format!(
            "select pg_notify('pgsse', json_build_object('id', {next}, 'kind', 'newBoard', \
               'data', json_build_object('board_id', 999, 'board_name', 'forged', \
                                         'creator_username', 'mallory'))::text)",
            next = start + 1
        ))
        .await;
    forger
        .exec(&format!(
            "select count(pg_notify('pgsse', json_build_object('id', i, 'kind', 'newBoard', \
               'data', json_build_object('board_id', i, 'board_name', 'forged' || i, \
                                         'creator_username', 'mallory'))::text)) \
               from generate_series({}, {}) as i",
            start + 2,
            start + 1001
        ))
        .await;
    let rejected = async {
        while metric(&app, "notifications_rejected_total").await < 1001.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, rejected)
        .await
        .expect("the forged notifications are counted");
    assert_eq!(metric(&app, "hub_last_event_id").await, start as f64);

    for i in 0..3 {
        insert_board(&sql, "alice", &format!("real {i}")).await;
    }
    let through = newest_event(&sql).await;
    assert_eq!(through, start + 3);
    live.read(3).await;
    check(&sql, &live, start, through)
        .await
        .assert_clean("the live stream");
    let mut resumed = Recorder::connect(app.addr, STREAM, Some(start)).await;
    resumed.read(3).await;
    check(&sql, &resumed, start, through)
        .await
        .assert_clean("the resumed stream");
    assert_eq!(metric(&app, "notifications_rejected_total").await, 1001.0);
    assert_eq!(metric(&app, "events_received_total").await, through as f64);
}

#[tokio::test]
async fn after_the_notify_key_is_replaced_events_still_arrive_signed() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    let mut client = app.stream().await;
    insert_board(&sql, "alice", "before").await;
    assert_eq!(client.next_event().await.json()["board_name"], "before");
    sql.exec("select pgsse.rotate_notify_key()").await;
    insert_board(&sql, "alice", "after").await;
    assert_eq!(client.next_event().await.json()["board_name"], "after");
    // The listener read the new key at the first notification it could not verify, and that
    // notification then verified: nothing was dropped.
    assert_eq!(metric(&app, "notifications_rejected_total").await, 0.0);
}

#[tokio::test]
async fn a_forger_cannot_keep_a_replaced_notify_key_in_use() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    let mut client = app.stream().await;
    let mallory = role_name(&app.database_url, "mallory");
    sql.exec(&format!("create role {mallory} login")).await;
    let forger = connect(&as_role(&app.database_url, &mallory)).await;
    // Shaped like a signed notification, so the listener reads the key again to check it.
    forger
        .exec(&format!(
            "select pg_notify('pgsse', '{{\"id\" : 1, \"kind\" : \"newBoard\", \
               \"data\" : {{}}, \"sig\" : \"{}\"}}')",
            "0".repeat(64)
        ))
        .await;
    let rejected = async {
        while metric(&app, "notifications_rejected_total").await < 1.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    timeout(WAIT, rejected)
        .await
        .expect("the forged notification is rejected");

    // Right after, the key is replaced, as by an operator who knows nothing of the forger.
    sql.exec("select pgsse.rotate_notify_key()").await;
    for i in 0..6 {
        let name = format!("after {i}");
        insert_board(&sql, "alice", &name).await;
        assert_eq!(client.next_event().await.json()["board_name"], name);
    }
    // The first event after the rotation may come from the table, its notification rejected
    // under the old key, and so may the next if its notification came before the key was read
    // again; the key is read again before the table, and the later notifications verify.
    let rejected = metric(&app, "notifications_rejected_total").await;
    assert!(
        rejected <= 3.0,
        "{rejected} notifications rejected: the forger's, and real ones under the old key"
    );
}

/// The gateway as a process of its own (so that its memory is its own) on `url`; and its address.
async fn spawn_gateway_process(url: &str) -> (KillOnDrop, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let gateway = Command::new(env!("CARGO_BIN_EXE_pgsse"))
        .env("DATABASE_URL", url)
        .env("BIND_ADDR", addr.to_string())
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let gateway = KillOnDrop::new(gateway);
    let ready = async {
        while TcpStream::connect(addr).await.is_err() || get(addr, "/readyz").await.status != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(WAIT, ready).await.expect("the gateway starts");
    (gateway, addr)
}

/// A counter or gauge from the `/metrics` of the gateway at `addr`.
async fn metric_at(addr: SocketAddr, name: &str) -> f64 {
    let text = get(addr, "/metrics").await.text();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("pgsse_{name} ")))
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
        .parse()
        .expect("a number")
}

/// The resident memory of a process, in KiB.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_flood_of_forged_notifications_hides_no_event_and_does_not_fill_the_gateways_memory() {
    let url = fresh_database(pg::shared()).await;
    let (gateway, addr) = spawn_gateway_process(&url).await;
    let sql = connect(&url).await;
    insert_board(&sql, "alice", "before").await;
    let start = newest_event(&sql).await;
    let mut live = Recorder::connect(addr, STREAM, Some(start)).await;
    let mallory = role_name(&url, "mallory");
    sql.exec(&format!("create role {mallory} login")).await;
    let forger = connect(&as_role(&url, &mallory)).await;

    // The gateway's highest RSS from now until the flood has been dealt with.
    let before = rss(gateway.id());
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (pid, done) = (gateway.id(), done.clone());
        async move {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(rss(pid));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        }
    });
    // 20,000 notifications of 7.9 KB, all different (PostgreSQL folds identical ones of one
    // transaction into one), every other one shaped like a signed one; then a real event.
    const FLOOD: usize = 20_000;
    forger
        .exec(&format!(
            "select count(pg_notify('pgsse', \
               format('{{\"id\" : %s, \"kind\" : \"newBoard\", \"data\" : {{\"pad\" : \"%s\"}}%s}}', \
                      i, repeat('x', 7700), \
                      case when i % 2 = 1 then ', \"sig\" : \"' || repeat('0', 64) || '\"' else '' end))) \
               from generate_series(1, {FLOOD}) as i"
        ))
        .await;
    insert_board(&sql, "alice", "during").await;
    let through = newest_event(&sql).await;
    live.read_through(through).await;
    // Every notification has come off the connection: the flood, and the events before and
    // during it.
    let received = async {
        while metric_at(addr, "notifications_received_total").await < (FLOOD + 2) as f64 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(WAIT, received)
        .await
        .expect("every notification is received");
    done.store(true, Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    println!("{FLOOD} forged notifications: gateway RSS {before} KiB, then at most {peak} KiB");
    // The flood is 150 MiB; the listener holds at most 1 MiB of it at a time.
    let growth_kib = peak.saturating_sub(before);
    assert!(
        growth_kib < 32 * 1024,
        "a flood of forged notifications grew the gateway by {growth_kib} KiB (from {before} KiB)"
    );

    check(&sql, &live, start, through)
        .await
        .assert_clean("the live stream");
    let dropped = async {
        loop {
            let rejected = metric_at(addr, "notifications_rejected_total").await;
            let overflowed = metric_at(addr, "notifications_overflowed_total").await;
            if rejected + overflowed >= FLOOD as f64 {
                return overflowed;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let overflowed = timeout(WAIT, dropped)
        .await
        .expect("every forged notification is dropped");
    // While the listener waited on a query, the flood came in faster than it could be read:
    // what did not fit the listener's queue was dropped, and the events read from the table.
    assert!(overflowed > 0.0);
    assert_eq!(metric_at(addr, "hub_last_event_id").await, through as f64);
    assert_eq!(
        metric_at(addr, "events_received_total").await,
        through as f64
    );
}

#[tokio::test]
async fn a_real_event_does_not_wait_behind_a_flood_of_forged_notifications() {
    let url = fresh_database(pg::shared()).await;
    let (_gateway, addr) = spawn_gateway_process(&url).await;
    let sql = connect(&url).await;
    insert_board(&sql, "alice", "before").await;
    let start = newest_event(&sql).await;
    let mut live = Recorder::connect(addr, STREAM, Some(start)).await;
    let mallory = role_name(&url, "mallory");
    sql.exec(&format!("create role {mallory} login")).await;
    let forger = connect(&as_role(&url, &mallory)).await;
    let received_before = metric_at(addr, "notifications_received_total").await;

    // 400,000 small notifications, all different, every tenth shaped like a signed one; the
    // gateway takes a while to read them all. Then a real event, whose notification PostgreSQL
    // sends after all of them.
    const FLOOD: usize = 400_000;
    forger
        .exec(&format!(
            "select count(pg_notify('pgsse', \
               format('{{\"id\" : %s, \"kind\" : \"newBoard\", \"data\" : {{}}%s}}', i, \
                      case when i % 10 = 1 then ', \"sig\" : \"' || repeat('0', 64) || '\"' else '' end))) \
               from generate_series(1, {FLOOD}) as i"
        ))
        .await;
    insert_board(&sql, "alice", "during").await;
    let through = newest_event(&sql).await;
    live.read_through(through).await;
    // The event came from the table while the flood sent before it was still being read.
    let received = metric_at(addr, "notifications_received_total").await - received_before;
    println!("the event arrived when {received} of {FLOOD} forged notifications had been read");
    assert!(
        received < FLOOD as f64,
        "the real event reached its client only after the gateway had read {received} of the \
         {FLOOD} forged notifications sent before it"
    );
    let read_all = async {
        while metric_at(addr, "notifications_received_total").await - received_before
            < (FLOOD + 1) as f64
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let reading = tokio::time::Instant::now();
    timeout(WAIT, read_all)
        .await
        .expect("every notification is received");
    println!("the rest of the flood took {:?} to read", reading.elapsed());
    // The listener kept its connection while it was busy reading, and missed nothing.
    assert_eq!(metric_at(addr, "listener_reconnects_total").await, 0.0);
    check(&sql, &live, start, through)
        .await
        .assert_clean("the live stream");
    assert_eq!(metric_at(addr, "hub_last_event_id").await, through as f64);
}

#[tokio::test]
async fn an_application_role_with_the_documented_grants_makes_events_but_cannot_touch_the_log() {
    // The gateway's role owns its database (and so schema pgsse); it is not a superuser.
    let cluster = pg::shared();
    let admin = connect(&cluster.url("postgres")).await;
    admin
        .exec("create role pgsse_gateway login; create role pgsse_app login")
        .await;
    admin
        .exec("create database least_privilege owner pgsse_gateway")
        .await;
    let owner_url = as_role(&cluster.url("least_privilege"), "pgsse_gateway");
    let app = spawn_app_on(&owner_url, &[]).await;
    let owner = connect(&owner_url).await;
    owner
        .exec(include_str!("../../sql/grant_application_role.sql"))
        .await;

    let application = connect(&as_role(&cluster.url("least_privilege"), "pgsse_app")).await;
    let mut stream = app.stream().await;
    application
        .exec(
            "insert into app_user(username) values ('ann'); \
             insert into board(name, creator_id) select 'b', id from app_user; \
             insert into path(board_id, user_id) select b.id, u.id from board b, app_user u; \
             insert into notification(user_id) select id from app_user; \
             select pgsse.publish('system.notice', '{}', key => 'app-1')",
        )
        .await;
    let kinds: Vec<String> = [
        stream.next_event().await,
        stream.next_event().await,
        stream.next_event().await,
    ]
    .into_iter()
    .map(|e| e.event)
    .collect();
    // The notification is ann's own, so this anonymous stream does not get it.
    assert_eq!(kinds, ["newBoard", "newPath", "system.notice"]);
    let published = application
        .one("select pgsse.published('app-1')", &[])
        .await
        .get::<_, Option<i64>>(0);
    assert_eq!(published, Some(4));

    let refused = [
        "select * from pgsse.event",
        "insert into pgsse.event (id, kind, payload) values (100, 'newBoard', '{}')",
        "select * from pgsse.horizon",
        "update pgsse.horizon set pruned_through = 0",
        "select * from pgsse.notify_key",
        "insert into pgsse.outbox (kind, data) values ('x', '{}')",
        "select pgsse.emit('newBoard', '{}')",
        "select pgsse.prune('0 seconds', 0)",
        "select pgsse.rotate_notify_key()",
    ];
    for statement in refused {
        let err = application.try_exec(statement).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{statement}: {err:?}"
        );
    }
    let rows = owner
        .query(
            "select proname, prosecdef, array_to_string(proconfig, ',') from pg_proc \
             where pronamespace = 'pgsse'::regnamespace and proname in \
                   ('capture', 'release', 'publish', 'published') order by proname",
            &[],
        )
        .await;
    for row in rows {
        let name: String = row.get(0);
        assert!(row.get::<_, bool>(1), "{name} runs as its owner");
        assert_eq!(
            row.get::<_, String>(2),
            "search_path=pg_catalog, pgsse, public, pg_temp",
            "{name}"
        );
    }
}

#[test]
fn the_sql_page_shows_the_grants_as_the_sql_file_has_them() {
    let page = include_str!("../../docs/sql.md");
    let grants = include_str!("../../sql/grant_application_role.sql");
    assert!(
        page.contains(&format!("```sql\n{grants}```")),
        "docs/sql.md's copy of sql/grant_application_role.sql differs from the file"
    );
}
