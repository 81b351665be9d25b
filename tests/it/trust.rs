//! Trust: only what the gateway's own functions recorded in `pgsse.event` reaches a client. A
//! notification is a hint, never proof: any role that can connect may send one.

use std::time::Duration;

use crate::support::checker::{check, Recorder};
use crate::support::{connect, insert_board, metric, newest_event, spawn_app, WAIT};

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
    let mut live = Recorder::connect(app.addr, STREAM, None).await;

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
