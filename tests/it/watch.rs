//! Any table's changes as events: `pgsse.watch`, `pgsse.unwatch` and `pgsse.watches`. What a
//! stream shows of a watched table's inserts, updates and deletes; who gets them; the topic
//! filter; refusals; large rows; the least-privilege setup; definitions that outlive a gateway.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::timeout;
use tokio_postgres::error::SqlState;

use crate::support::sse::{SseClient, SseEvent};
use crate::support::{
    as_role, connect, pg, spawn_app, spawn_app_on, spawn_app_with, Sql, TestApp, WAIT,
};

const SECRET: &str = "a test secret that is long enough for HS256";

const ORDERS: &str = "create table orders (\
        id bigint generated always as identity primary key, \
        customer text, \
        watchers text[], \
        store_id int, \
        status text not null default 'new', \
        total numeric not null default 0, \
        note text)";

fn token(user: &str) -> String {
    pgsse::auth::Verifier::new(SECRET).sign(&pgsse::auth::Claims {
        sub: user.into(),
        role: None,
        exp: pgsse::auth::now() + 600,
        nbf: None,
    })
}

/// Publishes an event for everyone that ends what a test reads: every stream gets it after
/// every event committed before it.
async fn end_mark(sql: &Sql) {
    sql.exec("select pgsse.publish('done', '{}')").await;
}

/// The events a stream receives up to the end mark, without it.
async fn until_end(stream: &mut SseClient) -> Vec<SseEvent> {
    let mut events = Vec::new();
    loop {
        let event = stream.next_event().await;
        if event.event == "done" {
            return events;
        }
        events.push(event);
    }
}

fn kinds_and_data(events: &[SseEvent]) -> Vec<(String, Value)> {
    events.iter().map(|e| (e.event.clone(), e.json())).collect()
}

async fn orders_app() -> (TestApp, Sql) {
    let app = spawn_app().await;
    let sql = app.sql().await;
    sql.exec(ORDERS).await;
    (app, sql)
}

#[tokio::test]
async fn inserts_updates_and_deletes_reach_the_stream_with_the_chosen_columns_in_commit_order() {
    let (app, sql) = orders_app().await;
    sql.exec(
        "select pgsse.watch('orders', kind => 'order', \
             operations => array['insert', 'update', 'delete'], \
             columns => array['id', 'status', 'total'], filter => 'total > 0')",
    )
    .await;
    let mut stream = app.stream().await;
    let first = crate::support::newest_event(&sql).await;
    sql.exec(
        "insert into orders (customer, total) values ('ann', 10); \
         insert into orders (customer, total) values ('bob', 0); \
         update orders set note = 'a note', customer = 'ann b' where id = 1; \
         begin; update orders set status = 'paid' where id = 1; \
                update orders set total = 12 where id = 1; commit; \
         update orders set status = 'paid' where id = 2; \
         delete from orders where id = 1",
    )
    .await;
    end_mark(&sql).await;
    let events = until_end(&mut stream).await;
    let expected = vec![
        (
            "order",
            json!({"op": "insert", "row": {"id": 1, "status": "new", "total": 10}}),
        ),
        (
            "order",
            json!({"op": "update", "row": {"id": 1, "status": "paid", "total": 10},
                   "changed": ["status"]}),
        ),
        (
            "order",
            json!({"op": "update", "row": {"id": 1, "status": "paid", "total": 12},
                   "changed": ["total"]}),
        ),
        (
            "order",
            json!({"op": "delete", "row": {"id": 1, "status": "paid", "total": 12}}),
        ),
    ];
    let expected: Vec<(String, Value)> = expected
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(kinds_and_data(&events), expected);
    let ids: Vec<i64> = events.iter().map(SseEvent::id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids[0] > first);

    // A stream that resumes after the first event gets the rest, the same.
    let resumed = format!("/sse/notifications/?lastEventId={}", ids[0]);
    let mut resumed = app.sse(&resumed, &[]).await;
    let again = until_end(&mut resumed).await;
    assert_eq!(kinds_and_data(&again), expected[1..]);
}

#[tokio::test]
async fn every_column_by_default_and_inserts_only() {
    let (app, sql) = orders_app().await;
    sql.exec("select pgsse.watch('orders', 'order')").await;
    let mut stream = app.stream().await;
    sql.exec(
        "insert into orders (customer, store_id) values ('ann', 3); \
         update orders set status = 'paid'; delete from orders",
    )
    .await;
    end_mark(&sql).await;
    let events = until_end(&mut stream).await;
    assert_eq!(
        kinds_and_data(&events),
        [(
            "order".to_owned(),
            json!({"op": "insert", "row": {"id": 1, "customer": "ann", "watchers": null,
                   "store_id": 3, "status": "new", "total": 0, "note": null}})
        )]
    );
    let watches = sql
        .one(
            "select \"table\"::text, kind, operations, columns, filter, recipient, topic \
               from pgsse.watches",
            &[],
        )
        .await;
    assert_eq!(watches.get::<_, String>(0), "orders");
    assert_eq!(watches.get::<_, Vec<String>>(2), ["insert"]);
    assert_eq!(
        watches.get::<_, Vec<String>>(3),
        ["id", "customer", "watchers", "store_id", "status", "total", "note"]
    );
}

/// Streams of ann, bob, cid and an anonymous one; each row of orders is for its customer and
/// its watchers; returns what each stream got of them.
async fn recipients_seen(app: &TestApp, sql: &Sql, streams: Vec<SseClient>) -> Vec<Vec<i64>> {
    sql.exec(
        "select pgsse.watch('orders', 'order', columns => array['id'], \
             recipient => 'array_append(watchers, customer)')",
    )
    .await;
    // No app_user row names any of them: a recipient is whoever a token (or userId) names.
    sql.exec(
        "insert into orders (customer) values ('ann'); \
         insert into orders (customer, watchers) values ('bob', '{cid, ann}'); \
         insert into orders (customer, watchers) values (null, '{cid, null, cid}'); \
         insert into orders (customer, watchers) values (null, '{}'); \
         insert into orders (customer) values (null)",
    )
    .await;
    assert_eq!(
        sql.one("select count(*) from app_user", &[])
            .await
            .get::<_, i64>(0),
        0
    );
    end_mark(sql).await;
    let mut seen = Vec::new();
    for mut stream in streams {
        let events = until_end(&mut stream).await;
        seen.push(
            events
                .iter()
                .map(|e| e.json()["row"]["id"].as_i64().unwrap())
                .collect(),
        );
    }
    let _ = app;
    seen
}

#[tokio::test]
async fn a_recipient_column_and_an_array_reach_exactly_those_users_without_authentication() {
    let (app, sql) = orders_app().await;
    let mut streams = Vec::new();
    for user in ["ann", "bob", "cid"] {
        streams.push(
            app.sse(&format!("/sse/notifications/?userId={user}"), &[])
                .await,
        );
    }
    streams.push(app.stream().await);
    let seen = recipients_seen(&app, &sql, streams).await;
    // Rows 4 and 5 name nobody: they make no event, rather than one for everyone.
    assert_eq!(seen, [vec![1, 2], vec![2], vec![2, 3], vec![]]);
    let recorded = sql
        .query(
            "select recipients from pgsse.event where kind = 'order' order by id",
            &[],
        )
        .await;
    let recorded: Vec<Vec<String>> = recorded.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        recorded,
        [vec!["ann"], vec!["ann", "bob", "cid"], vec!["cid"]]
    );
}

#[tokio::test]
async fn a_recipient_column_and_an_array_reach_exactly_those_users_with_authentication() {
    let app = spawn_app_with(&[("AUTH_JWT_SECRET", SECRET)]).await;
    let sql = app.sql().await;
    sql.exec(ORDERS).await;
    let mut streams = Vec::new();
    for user in ["ann", "bob", "cid"] {
        let path = format!("/sse/notifications/?access_token={}", token(user));
        streams.push(app.sse(&path, &[]).await);
    }
    // An anonymous stream is refused with authentication on; dan's is a user no row names.
    let path = format!("/sse/notifications/?access_token={}", token("dan"));
    streams.push(app.sse(&path, &[]).await);
    let seen = recipients_seen(&app, &sql, streams).await;
    assert_eq!(seen, [vec![1, 2], vec![2], vec![2, 3], vec![]]);
}

/// The events a stream receives up to the one of order `last`, with it: (kind, row id or board).
async fn through_order(stream: &mut SseClient, last: i64) -> Vec<(String, i64)> {
    let mut events = Vec::new();
    loop {
        let event = stream.next_event().await;
        let data = event.json();
        let id = data["row"]["id"].as_i64().or(data["board_id"].as_i64());
        events.push((event.event.clone(), id.expect("an order or a board")));
        if event.event == "order" && id == Some(last) {
            return events;
        }
    }
}

#[tokio::test]
async fn a_stream_of_a_topic_gets_only_that_topics_events() {
    let (app, sql) = orders_app().await;
    sql.exec(
        "select pgsse.watch('orders', 'order', columns => array['id'], \
             topic => $$'store-' || store_id$$)",
    )
    .await;
    let mut store1 = app.sse("/sse/notifications/?topic=store-1", &[]).await;
    let mut orders_of_store2 = app
        .sse("/sse/notifications/?topic=store-2&events=order", &[])
        .await;
    let mut everything = app.stream().await;
    sql.exec(
        "insert into orders (store_id) values (1), (2), (1), (null); \
         insert into app_user (username) values ('ann'); \
         insert into board (name, creator_id) select 'b', id from app_user; \
         insert into orders (store_id) values (2), (1)",
    )
    .await;
    let order = |id| ("order".to_owned(), id);
    assert_eq!(
        through_order(&mut store1, 6).await,
        [order(1), order(3), order(6)]
    );
    assert_eq!(
        through_order(&mut orders_of_store2, 5).await,
        [order(2), order(5)]
    );
    assert_eq!(
        through_order(&mut everything, 6).await,
        [
            order(1),
            order(2),
            order(3),
            order(4),
            ("newBoard".to_owned(), 1),
            order(5),
            order(6)
        ]
    );
    // The built-in events' topic is their board; an order of store 1 is not of topic 1.
    let mut board1 = app
        .sse("/sse/notifications/?topic=1&lastEventId=0", &[])
        .await;
    sql.exec("insert into path (board_id, user_id) select 1, id from app_user")
        .await;
    let (first, second) = (board1.next_event().await, board1.next_event().await);
    assert_eq!(
        (first.event.as_str(), second.event.as_str()),
        ("newBoard", "newPath")
    );
    assert_eq!(second.json()["board_id"], 1);
    // A topic longer than 200 characters is refused.
    let long = format!("/sse/notifications/?topic={}", "t".repeat(201));
    let refused = app.sse(&long, &[]).await;
    assert_eq!(refused.status, 400);
}

#[tokio::test]
async fn unwatch_stops_events_and_watching_again_replaces_the_definition() {
    let (app, sql) = orders_app().await;
    sql.exec("select pgsse.watch('orders', 'order', columns => array['id'])")
        .await;
    let mut stream = app.stream().await;
    sql.exec("insert into orders (customer) values ('a')").await;
    // A transaction that wrote before the definition changed makes its events by the definition
    // it wrote under; the change waits for it (it holds the table).
    let writer = app.sql().await;
    writer
        .exec("begin; insert into orders (customer) values ('b')")
        .await;
    let replacing = tokio::spawn({
        let url = app.database_url.clone();
        async move {
            connect(&url)
                .await
                .exec(
                    "select pgsse.watch('orders', 'order.v2', columns => array['customer'], \
                         operations => array['insert', 'delete'])",
                )
                .await
        }
    });
    writer.exec("commit").await;
    replacing.await.unwrap();
    sql.exec("insert into orders (customer) values ('c'); delete from orders where id = 1")
        .await;
    let unwatched: bool = sql.one("select pgsse.unwatch('orders')", &[]).await.get(0);
    assert!(unwatched);
    sql.exec("insert into orders (customer) values ('d')").await;
    let again: bool = sql.one("select pgsse.unwatch('orders')", &[]).await.get(0);
    assert!(!again, "unwatch says whether the table was watched");
    end_mark(&sql).await;
    assert_eq!(
        kinds_and_data(&until_end(&mut stream).await),
        [
            (
                "order".to_owned(),
                json!({"op": "insert", "row": {"id": 1}})
            ),
            (
                "order".to_owned(),
                json!({"op": "insert", "row": {"id": 2}})
            ),
            (
                "order.v2".to_owned(),
                json!({"op": "insert", "row": {"customer": "c"}})
            ),
            (
                "order.v2".to_owned(),
                json!({"op": "delete", "row": {"customer": "a"}})
            ),
        ]
    );
    let left = sql
        .one(
            "select (select count(*) from pgsse.watches), \
                    (select count(*) from pg_trigger where tgrelid = 'orders'::regclass), \
                    (select count(*) from pg_proc where pronamespace = 'pgsse'::regnamespace \
                                                   and proname like 'watch\\_%')",
            &[],
        )
        .await;
    assert_eq!(
        (
            left.get::<_, i64>(0),
            left.get::<_, i64>(1),
            left.get::<_, i64>(2)
        ),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn bad_definitions_are_refused_with_a_message_that_says_why() {
    let (_app, sql) = orders_app().await;
    sql.exec("create view order_view as select * from orders")
        .await;
    let refused = [
        (
            "select pgsse.watch('nothing', 'x')",
            "relation \"nothing\" does not exist",
        ),
        (
            "select pgsse.watch('orders', 'order', columns => array['id', 'zip'])",
            "table public.orders has no column 'zip'",
        ),
        (
            "select pgsse.watch('orders', 'order', filter => 'totl > 0')",
            "the filter 'totl > 0' of table public.orders is not a boolean expression of the row: \
             column \"totl\" does not exist",
        ),
        (
            "select pgsse.watch('orders', 'order', filter => 'total')",
            "argument of IS TRUE must be type boolean, not type numeric",
        ),
        (
            "select pgsse.watch('orders', 'order', recipient => 'store_id')",
            "the recipient 'store_id' of table public.orders is not a text or text[] expression",
        ),
        (
            "select pgsse.watch('orders', 'order', topic => 'nope(id)')",
            "the topic 'nope(id)' of table public.orders is not an expression of the row",
        ),
        (
            "select pgsse.watch('orders', 'order', filter => 'true; drop table orders')",
            "the filter must be one SQL expression over the row's columns",
        ),
        (
            "select pgsse.watch('orders', 'newBoard')",
            "event kind 'newBoard' is reserved",
        ),
        (
            "select pgsse.watch('orders', 'an order')",
            "invalid event kind 'an order'",
        ),
        (
            "select pgsse.watch('orders', 'order', operations => array['truncate'])",
            "operations must be some of insert, update and delete",
        ),
        (
            "select pgsse.watch('pgsse.event', 'x')",
            "table event is one of pgsse's own",
        ),
        (
            "select pgsse.watch('order_view', 'x')",
            "order_view is not a table",
        ),
    ];
    for (statement, message) in refused {
        let err = sql.try_exec(statement).await.unwrap_err();
        let said = err
            .as_db_error()
            .map(|e| e.message().to_owned())
            .unwrap_or_default();
        assert!(said.contains(message), "{statement}: {said}");
    }
    // A kind is one table's.
    sql.exec("create table refunds (id int); select pgsse.watch('orders', 'order')")
        .await;
    let err = sql
        .try_exec("select pgsse.watch('refunds', 'order')")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let said = err.as_db_error().map(|e| e.message()).unwrap_or_default();
    assert!(
        said.contains("already the kind of watched table public.orders"),
        "{said}"
    );
    // Nothing of the refused definitions was kept.
    let kept = sql
        .query("select \"table\"::text, kind from pgsse.watches", &[])
        .await;
    let kept: Vec<(String, String)> = kept.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(kept, [("orders".to_owned(), "order".to_owned())]);
}

#[tokio::test]
async fn a_row_of_100_kb_arrives_whole_and_its_insert_does_not_fail() {
    let (app, sql) = orders_app().await;
    sql.exec("select pgsse.watch('orders', 'order', columns => array['id', 'note'])")
        .await;
    let mut stream = app.stream().await;
    let note: String = (0..100_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    sql.query("insert into orders (note) values ($1)", &[&note])
        .await;
    end_mark(&sql).await;
    let events = until_end(&mut stream).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].json()["row"]["note"].as_str(),
        Some(note.as_str())
    );
}

#[tokio::test]
async fn an_application_roles_writes_make_events_while_it_still_cannot_read_the_log() {
    let cluster = pg::shared();
    let admin = connect(&cluster.url("postgres")).await;
    admin
        .exec("create role watch_gateway login; create role watch_app login")
        .await;
    admin
        .exec("create database watch_least_privilege owner watch_gateway")
        .await;
    let url = cluster.url("watch_least_privilege");
    let owner_url = as_role(&url, "watch_gateway");
    let app = spawn_app_on(&owner_url, &[]).await;
    let owner = connect(&owner_url).await;
    owner.exec("grant usage on schema pgsse to watch_app").await;
    connect(&url)
        .await
        .exec("create schema shop authorization watch_app")
        .await;
    // The application makes its own table, and lets the gateway's role put a trigger on it.
    let application = connect(&as_role(&url, "watch_app")).await;
    application
        .exec(&format!(
            "{}; grant usage on schema shop to watch_gateway; \
             grant trigger on shop.orders to watch_gateway",
            ORDERS.replace("table orders", "table shop.orders")
        ))
        .await;
    owner
        .exec("select pgsse.watch('shop.orders', 'order', columns => array['id', 'customer'])")
        .await;
    let mut stream = app.stream().await;
    application
        .exec("insert into shop.orders (customer) values ('ann')")
        .await;
    end_mark(&owner).await;
    assert_eq!(
        kinds_and_data(&until_end(&mut stream).await),
        [(
            "order".to_owned(),
            json!({"op": "insert", "row": {"id": 1, "customer": "ann"}})
        )]
    );
    for statement in [
        "select * from pgsse.event",
        "select * from pgsse.watches",
        "select pgsse.emit('order', '{}')",
        "insert into pgsse.outbox (kind, data) values ('order', '{}')",
        "select pgsse.watch('shop.orders', 'order2')",
        "select pgsse.unwatch('shop.orders')",
    ] {
        let err = application.try_exec(statement).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{statement}: {err:?}"
        );
    }
}

#[tokio::test]
async fn definitions_outlive_a_gateway_and_reach_a_second_one() {
    let mut first = spawn_app().await;
    let sql = first.sql().await;
    sql.exec(ORDERS).await;
    sql.exec("select pgsse.watch('orders', 'order', columns => array['id'])")
        .await;
    first.stop().await;
    let restarted = spawn_app_on(&first.database_url, &[]).await;
    let second = spawn_app_on(&first.database_url, &[]).await;
    let mut streams = [restarted.stream().await, second.stream().await];
    sql.exec("insert into orders default values").await;
    end_mark(&sql).await;
    for stream in &mut streams {
        assert_eq!(
            kinds_and_data(&until_end(stream).await),
            [(
                "order".to_owned(),
                json!({"op": "insert", "row": {"id": 1}})
            )]
        );
    }
}

#[tokio::test]
async fn a_table_dropped_and_made_again_can_be_watched_under_its_kind() {
    let (app, sql) = orders_app().await;
    sql.exec("select pgsse.watch('orders', 'order', columns => array['id'])")
        .await;
    sql.exec(&format!("drop table orders; {ORDERS}")).await;
    sql.exec("select pgsse.watch('orders', 'order', columns => array['id', 'status'])")
        .await;
    let mut stream = app.stream().await;
    sql.exec("insert into orders default values").await;
    end_mark(&sql).await;
    assert_eq!(
        kinds_and_data(&until_end(&mut stream).await),
        [(
            "order".to_owned(),
            json!({"op": "insert", "row": {"id": 1, "status": "new"}})
        )]
    );
    let functions: i64 = sql
        .one(
            "select count(*) from pg_proc where pronamespace = 'pgsse'::regnamespace \
                                           and proname like 'watch\\_%'",
            &[],
        )
        .await
        .get(0);
    assert_eq!(functions, 1, "the dropped table's function is gone");
}

/// Orders by id with their status, as a read or a replay of events sees them.
type Orders = std::collections::BTreeMap<i64, String>;

/// Writes orders until stopped: each round inserts one, changes the status of one and deletes
/// one, each in a transaction of its own.
async fn write_orders(url: String, writer: usize, stop: Arc<AtomicBool>) {
    let sql = connect(&url).await;
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        sql.exec(&format!(
            "insert into orders (customer) values ('w{writer}'); \
             update orders set status = 'w{writer}-{round}' \
              where id = (select id from orders order by random() limit 1); \
             delete from orders \
              where id = (select id from orders where {round} % 3 = 0 order by random() limit 1)"
        ))
        .await;
    }
}

/// `read`, with the stream's events applied in order; an insert of an order the read has, or an
/// update or delete of one it lacks, is an event the read already reflected (or one missing).
fn replay(mut read: Orders, events: &[SseEvent]) -> Result<Orders, String> {
    for event in events {
        let data = event.json();
        let id = data["row"]["id"].as_i64().expect("an order id");
        let status = data["row"]["status"].as_str().expect("a status").to_owned();
        let known = read.contains_key(&id);
        match (data["op"].as_str(), known) {
            (Some("insert"), false) | (Some("update"), true) => {
                read.insert(id, status);
            }
            (Some("delete"), true) => {
                read.remove(&id);
            }
            (op, _) => {
                return Err(format!(
                    "event {} ({op:?} of {id}) does not fit",
                    event.id()
                ))
            }
        }
    }
    Ok(read)
}

#[tokio::test]
async fn a_read_of_a_watched_table_and_the_stream_from_its_position_make_the_final_state() {
    const ROUNDS: usize = 20;
    let (app, reader) = orders_app().await;
    reader
        .exec(
            "select pgsse.watch('orders', 'order', columns => array['id', 'status'], \
                 operations => array['insert', 'update', 'delete'])",
        )
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(write_orders(app.database_url.clone(), w, stop.clone())))
        .collect();
    let newest = || crate::support::newest_event(&reader);
    let under_way = async {
        while newest().await < 10 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(WAIT, under_way).await.expect("the writers write");
    let mut reads = Vec::new();
    for _ in 0..ROUNDS {
        reader
            .exec("begin isolation level repeatable read read only")
            .await;
        let rows = reader.query("select id, status from orders", &[]).await;
        let read: Orders = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let position: i64 = reader.one("select pgsse.position()", &[]).await.get(0);
        reader.exec("commit").await;
        let path = format!("/sse/notifications/?events=order&lastEventId={position}");
        reads.push((read, position, app.sse(&path, &[]).await));
    }
    // Every read is followed by the writers' commits before they stop.
    let last_read = reads.last().map_or(0, |(_, position, _)| *position);
    let more = async {
        while newest().await <= last_read {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(WAIT, more).await.expect("the writers write on");
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        timeout(WAIT, writer)
            .await
            .expect("a writer stops")
            .expect("cleanly");
    }
    let rows = reader.query("select id, status from orders", &[]).await;
    let last: Orders = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let through = crate::support::newest_event(&reader).await;
    let mut changed_after = 0;
    for (read, position, mut stream) in reads {
        let mut events = Vec::new();
        while events.last().map_or(position, SseEvent::id) < through {
            events.push(stream.next_event().await);
        }
        changed_after += usize::from(!events.is_empty() && !read.is_empty());
        let replayed = replay(read, &events);
        assert_eq!(
            replayed.as_ref(),
            Ok(&last),
            "the read at {position} and its stream"
        );
    }
    assert_eq!(
        changed_after, ROUNDS,
        "every read saw orders, and changes came after it"
    );
}
