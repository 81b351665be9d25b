//! Several gateways on one database.

use std::time::Duration;

use crate::support::checker::{check, Recorder, Resume};
use crate::support::{fresh_database, newest_event, pg, spawn_app_on, spawn_writer};

const STREAM: &str = "/sse/notifications/";

#[tokio::test]
async fn two_gateways_deliver_the_same_ids_and_a_client_can_move_between_them() {
    let url = fresh_database(pg::shared()).await;
    let a = spawn_app_on(&url, &[]).await;
    let b = spawn_app_on(&url, &[]).await;
    let mut on_a = Recorder::connect(a.addr, STREAM, Some(0)).await;
    let mut on_b = Recorder::connect(b.addr, STREAM, Some(0)).await;
    let mut mover = Recorder::connect(a.addr, STREAM, Some(0)).await;
    let writer = spawn_writer(&url, "w", 200, Duration::from_millis(1));
    mover.read(60).await;
    mover.reconnect(b.addr, Resume::Header).await;
    mover.read(60).await;
    mover.reconnect(a.addr, Resume::Query).await;
    writer.await.unwrap();
    let sql = crate::support::connect(&url).await;
    let through = newest_event(&sql).await;
    for (name, client) in [
        ("on a", &mut on_a),
        ("on b", &mut on_b),
        ("mover", &mut mover),
    ] {
        client.read_through(through).await;
        check(&sql, client, 0, through).await.assert_clean(name);
    }
    assert_eq!(
        on_a.received, on_b.received,
        "both gateways sent the same ids and data"
    );
}

#[tokio::test]
async fn a_client_resumes_across_a_gateway_restart_and_misses_nothing() {
    let url = fresh_database(pg::shared()).await;
    let mut before = spawn_app_on(&url, &[]).await;
    let mut client = Recorder::connect(before.addr, STREAM, Some(0)).await;
    let writer = spawn_writer(&url, "w", 200, Duration::from_millis(2));
    client.read(50).await;
    before.stop().await;
    // Rows keep committing while no gateway runs; the new one starts after them.
    let after = spawn_app_on(&url, &[]).await;
    client.reconnect(after.addr, Resume::Header).await;
    writer.await.unwrap();
    let sql = crate::support::connect(&url).await;
    let through = newest_event(&sql).await;
    client.read_through(through).await;
    check(&sql, &client, 0, through)
        .await
        .assert_clean("client");
}

#[tokio::test]
async fn two_gateways_starting_together_on_a_new_database_both_migrate_cleanly() {
    let url = fresh_database(pg::shared()).await;
    // Each migrates as it starts; both get ready.
    tokio::join!(spawn_app_on(&url, &[]), spawn_app_on(&url, &[]));
    let sql = crate::support::connect(&url).await;
    let applied: i64 = sql
        .one("select count(*) from refinery_schema_history", &[])
        .await
        .get(0);
    let migrations = std::fs::read_dir("migrations").unwrap().count() as i64;
    assert_eq!(applied, migrations, "each migration applied exactly once");
}
