//! Three gateways on one database behind the nginx recipe, under load: one is killed, or all are
//! restarted in turn, and a dozen clients reading through nginx and reconnecting as browsers do
//! each end with every event exactly once and in order.

use std::time::Duration;

use crate::support::checker::{compare, table_for};
use crate::support::fleet::{free_addr, Gateway, Reconnecting};
use crate::support::nginx::Nginx;
use crate::support::tls::{certificate, scratch};
use crate::support::{connect, fresh_database, newest_event, pg, spawn_writer, Sql, WAIT};

const CLIENTS: usize = 12;

/// Three gateways on a fresh database, nginx in front of them, and the clients reading through
/// it from the start of the log.
async fn fleet(name: &str) -> (Vec<Gateway>, Nginx, Vec<Reconnecting>, String, Sql) {
    let url = fresh_database(pg::shared()).await;
    let mut gateways = Vec::new();
    for _ in 0..3 {
        gateways.push(Gateway::start(&url, free_addr()).await);
    }
    let dir = scratch(name);
    let (cert, key) = certificate(&dir);
    let addrs: Vec<_> = gateways.iter().map(|g| g.addr).collect();
    let nginx = Nginx::start(&addrs, &cert, &key, &dir.join("nginx")).await;
    let stream = format!("{}/sse/notifications/?lastEventId=0", nginx.base());
    let clients = (0..CLIENTS).map(|_| Reconnecting::start(&stream)).collect();
    let sql = connect(&url).await;
    (gateways, nginx, clients, url, sql)
}

/// Waits until the log holds at least `n` events.
async fn events_reach(sql: &Sql, n: i64) {
    let reached = async {
        while newest_event(sql).await < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, reached)
        .await
        .expect("the writer writes");
}

/// Every client has every event of the log, once and in order, and they reconnected `at_least`
/// times in all.
async fn every_client_has_the_log(sql: &Sql, clients: Vec<Reconnecting>, at_least: usize) {
    let through = newest_event(sql).await;
    let expected = table_for(sql, None, 0, through).await;
    assert!(expected.len() >= 400, "{} events", expected.len());
    let mut reconnects = 0;
    for (i, client) in clients.into_iter().enumerate() {
        let received = client.finish(through).await;
        let events: Vec<_> = received.events.iter().collect();
        compare(&events, &expected).assert_clean(&format!("client {i}"));
        reconnects += received.connections - 1;
    }
    println!(
        "{CLIENTS} clients got all {} events once and in order; {reconnects} reconnects in all",
        expected.len()
    );
    assert!(
        reconnects >= at_least,
        "{reconnects} reconnects, expected at least {at_least}"
    );
}

#[tokio::test]
async fn with_one_of_three_gateways_killed_under_load_every_client_gets_every_event_once() {
    let (mut gateways, nginx, clients, url, sql) = fleet("fleet-kill").await;
    let writer = spawn_writer(&url, "w", 600, Duration::from_millis(4));
    events_reach(&sql, 150).await;
    gateways[1].kill();
    writer.await.unwrap();
    // The clients that were on the killed gateway reconnected through nginx to another.
    every_client_has_the_log(&sql, clients, 1).await;
    drop(nginx);
}

#[tokio::test]
async fn a_rolling_restart_under_load_loses_nothing_and_no_client_gives_up() {
    let (mut gateways, nginx, clients, url, sql) = fleet("fleet-roll").await;
    let writer = spawn_writer(&url, "w", 900, Duration::from_millis(5));
    events_reach(&sql, 100).await;
    for gateway in &mut gateways {
        gateway.stop().await;
        gateway.restart().await;
    }
    writer.await.unwrap();
    // Every client was on one of the three, so each reconnected at least once.
    every_client_has_the_log(&sql, clients, CLIENTS).await;
    drop(nginx);
}
