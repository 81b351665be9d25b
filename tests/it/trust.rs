//! Trust: only what the gateway's own functions recorded in `pgsse.event` reaches a client. A
//! notification is a hint, never proof: any role that can connect may send one.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::support::checker::{check, Recorder};
use crate::support::{
    connect, insert_board, metric, newest_event, pg, spawn_app, spawn_app_on, WAIT,
};

const STREAM: &str = "/sse/notifications/";

/// The URL of `url`'s database for another role.
fn as_role(url: &str, role: &str) -> String {
    url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1)
}

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
fn the_readme_shows_the_grants_as_the_sql_file_has_them() {
    let readme = include_str!("../../README.md");
    let grants = include_str!("../../sql/grant_application_role.sql");
    assert!(
        readme.contains(&format!("```sql\n{grants}```")),
        "README.md's copy of sql/grant_application_role.sql differs from the file"
    );
}
