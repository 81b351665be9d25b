//! No statement of another role, and no mode a transaction sets, can make the application's
//! writers wait for the event lock or fail their commits.
//!
//! Each writer here waits for locks at most `lock_timeout`: a writer made to wait for the event
//! lock fails with `lock_not_available` instead of hanging the test.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::support::{
    connect, fresh_database, insert_board, metric, pg, spawn_app, spawn_app_on, Sql, TestApp, WAIT,
};

/// A role of this test's own that may only log in.
async fn login_only_role(app: &TestApp, name: &str) -> Sql {
    let database = app
        .database_url
        .rsplit('/')
        .next()
        .expect("a database name");
    let role = format!("{name}_{database}");
    app.sql()
        .await
        .exec(&format!("create role {role} login"))
        .await;
    let url = app
        .database_url
        .replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    connect(&url).await
}

/// A connection whose statements give up after waiting 10 s for a lock.
async fn impatient_writer(app: &TestApp) -> Sql {
    let writer = app.sql().await;
    writer.exec("set lock_timeout = '10s'").await;
    writer
}

#[tokio::test]
async fn a_role_that_can_only_log_in_cannot_take_the_event_lock() {
    let app = spawn_app().await;
    let mut stream = app.stream().await;
    let outsider = login_only_role(&app, "mallory").await;
    // The key of the lock the event functions took until now, and the lock they take now.
    outsider.exec("select pg_advisory_lock(7305011401)").await;
    let refused = outsider
        .try_exec("begin; lock table pgsse.event_lock in exclusive mode")
        .await
        .expect_err("an outsider may not lock the event lock");
    assert_eq!(refused.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    outsider.exec("rollback").await;

    let writer = impatient_writer(&app).await;
    insert_board(&writer, "alice", "not held up").await;
    assert_eq!(
        stream.next_event().await.json()["board_name"],
        "not held up"
    );
}

#[tokio::test]
async fn a_transaction_that_makes_the_event_triggers_immediate_holds_up_no_other_writer() {
    let app = spawn_app().await;
    let mut stream = app.stream().await;
    let immediate = app.sql().await;
    immediate
        .exec("insert into app_user(username) values ('bob')")
        .await;
    immediate
        .exec(
            "begin; set constraints all immediate; \
             insert into board(name, creator_id) select 'first written', id from app_user \
             where username = 'bob'; \
             select pgsse.publish('x.note', '{\"n\": 1}'); \
             set constraints all immediate",
        )
        .await;

    // The transaction above stays open, its statements done.
    let writer = impatient_writer(&app).await;
    insert_board(&writer, "alice", "first committed").await;
    let event = stream.next_event().await;
    assert_eq!(event.json()["board_name"], "first committed");

    immediate.exec("commit").await;
    let first_written = stream.next_event().await;
    assert_eq!(first_written.json()["board_name"], "first written");
    let note = stream.next_event().await;
    assert_eq!(
        (note.event.as_str(), note.json()["n"].as_i64()),
        ("x.note", Some(1))
    );
    assert!(event.id() < first_written.id() && first_written.id() < note.id());
}

#[tokio::test]
async fn events_commit_and_arrive_while_the_notification_queue_is_over_its_limit() {
    // PostgreSQL's queue holds 8 GB; filling half of it takes minutes, so this database's limit
    // is a ten-thousandth of a percent (8 kB), set before the gateway connects, and 790 kB are
    // held.
    let url = fresh_database(pg::shared()).await;
    let database = url.rsplit('/').next().expect("a database name");
    connect(&url)
        .await
        .exec(&format!(
            "alter database {database} set pgsse.notify_queue_limit = '0.000001'"
        ))
        .await;
    let app = spawn_app_on(&url, &[]).await;
    let mut stream = app.stream().await;
    // What a role that can only log in does: LISTEN, then never read, in an open transaction.
    let holder = login_only_role(&app, "holder").await;
    holder.exec("listen held").await;
    holder.exec("begin; select 1").await;
    let sender = login_only_role(&app, "sender").await;
    sender
        .exec("select pg_notify('held', i || repeat('x', 7900)) from generate_series(1, 100) i")
        .await;

    let filling = async {
        while app.get("/readyz").await.json()["warnings"].is_null() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(WAIT, filling)
        .await
        .expect("/readyz warns that the notification queue is over its limit");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let warning = ready.json()["warnings"][0].as_str().unwrap().to_owned();
    assert!(warning.contains("notification queue"), "{warning}");
    assert!(metric(&app, "notification_queue_limit").await < 0.00001);

    let notified = metric(&app, "notifications_received_total").await;
    let writer = connect(&app.database_url).await;
    insert_board(&writer, "alice", "unnotified").await;
    assert_eq!(stream.next_event().await.json()["board_name"], "unnotified");
    // The event came from the table: no notification was sent for it.
    assert_eq!(metric(&app, "notifications_received_total").await, notified);
}
