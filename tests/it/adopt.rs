//! Pointing the gateway at a database that already has an application in it: the demo's tables
//! go in `DEMO_SCHEMA`, never over the application's own tables (which it watches when asked),
//! and a schema the application's tables are in the way of is refused, with nothing made, until
//! `DEMO_SCHEMA` names another.

use std::time::Duration;

use serde_json::json;

use crate::support::{fresh_database, pg, spawn_app_on, spawn_app_unready, Sql, TestApp, WAIT};

/// A database whose application already has tables named like two of the demo's, with columns
/// of its own and rows in them.
async fn database_of_an_application() -> (String, Sql) {
    let url = fresh_database(pg::shared()).await;
    let sql = crate::support::connect(&url).await;
    sql.exec(
        "create table notification (id serial primary key, body text not null, seen boolean); \
         insert into notification (body, seen) values ('welcome', false), ('invoice', true); \
         create table board (code text primary key, owner text); \
         insert into board values ('ops', 'carol')",
    )
    .await;
    (url, sql)
}

/// The application's tables as it sees them: each column, and each row as text.
async fn application_tables(sql: &Sql) -> Vec<String> {
    let rows = sql
        .query(
            "select format('%s.%s %s %s', table_schema, table_name, column_name, data_type) \
               from information_schema.columns where table_schema = 'public' \
             union all select 'notification ' || n::text from public.notification n \
             union all select 'board ' || b::text from public.board b \
             union all select format('trigger %s on %s', tgname, tgrelid::regclass) \
               from pg_trigger where tgrelid in ('public.notification'::regclass, \
                                                 'public.board'::regclass) \
             order by 1",
            &[],
        )
        .await;
    rows.iter().map(|row| row.get(0)).collect()
}

/// `/readyz` until it answers 503 with a reason containing `says`.
async fn not_ready_saying(app: &TestApp, says: &str) -> String {
    let wait = async {
        loop {
            let ready = app.get("/readyz").await;
            let reason = ready.json()["reason"].as_str().unwrap_or("").to_owned();
            if ready.status == 503 && reason.contains(says) {
                return reason;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("/readyz did not say {says:?} in time"))
}

/// The gateway's objects that exist in the database, by schema-qualified name.
async fn made_by_the_gateway(sql: &Sql) -> Vec<String> {
    let rows = sql
        .query(
            "select n.nspname from pg_namespace n \
              where n.nspname in ('pgsse', 'pgsse_demo') \
             union all select c.oid::regclass::text from pg_class c \
              where c.relname in ('app_user', 'path', 'refinery_schema_history') \
             order by 1",
            &[],
        )
        .await;
    rows.iter().map(|row| row.get(0)).collect()
}

#[tokio::test]
async fn with_demo_schema_of_its_own_the_gateway_serves_a_database_that_has_tables_named_like_the_demos(
) {
    let (url, sql) = database_of_an_application().await;
    let before = application_tables(&sql).await;
    let app = spawn_app_on(&url, &[("DEMO_SCHEMA", "pgsse_demo")]).await;

    let mut stream = app.stream().await;
    sql.exec("select pgsse.publish('invoice.paid', '{\"invoice\": 7}')")
        .await;
    let event = stream.next_event().await;
    assert_eq!(
        (event.event.as_str(), event.data.as_str()),
        ("invoice.paid", r#"{"invoice":7}"#)
    );
    let user = app.post("/api/users", &json!({"username": "alice"})).await;
    assert_eq!(user.status, 201, "{}", user.text());
    let board = json!({"name": "demo board", "creator": "alice"});
    let board = app.post("/api/boards", &board).await;
    assert_eq!(board.status, 201, "{}", board.text());
    assert_eq!(app.get("/api/boards").await.status, 200);
    let event = stream.next_event().await;
    assert_eq!(event.event, "newBoard");
    assert_eq!(event.json()["board_name"], "demo board");

    assert_eq!(application_tables(&sql).await, before, "untouched");
    let demo = sql
        .one(
            "select count(*) from pgsse_demo.board where name = 'demo board'",
            &[],
        )
        .await;
    assert_eq!(
        demo.get::<_, i64>(0),
        1,
        "the demo's board is in its schema"
    );

    // The application's own notification table, watched when it asks, makes events of its own.
    sql.exec(
        "select pgsse.watch('notification', kind => 'app.notification', \
                            columns => array['id', 'body'])",
    )
    .await;
    sql.exec("insert into notification (body) values ('shipped')")
        .await;
    let event = stream.next_event().await;
    assert_eq!(event.event, "app.notification");
    assert_eq!(
        event.json(),
        json!({"op": "insert", "row": {"id": 3, "body": "shipped"}})
    );
}

#[tokio::test]
async fn with_the_default_demo_schema_the_gateway_names_the_table_in_the_way_and_makes_nothing() {
    let (url, sql) = database_of_an_application().await;
    let before = application_tables(&sql).await;
    let mut app = spawn_app_unready(&url, &[]).await;
    let reason = not_ready_saying(&app, "already has a table").await;
    assert!(
        reason.contains("schema public already has a table board"),
        "{reason}"
    );
    assert!(reason.contains("DEMO_SCHEMA=pgsse_demo"), "{reason}");
    // The reason shows once the refusal happened; retries refuse again, in transactions that make
    // nothing.
    assert_eq!(made_by_the_gateway(&sql).await, Vec::<String>::new());
    assert_eq!(application_tables(&sql).await, before, "untouched");
    app.stop().await;

    // As the message says: the same database, with a schema of the demo's own.
    let _app = spawn_app_on(&url, &[("DEMO_SCHEMA", "pgsse_demo")]).await;
    assert_eq!(application_tables(&sql).await, before, "still untouched");
}

#[tokio::test]
async fn a_demo_schema_changed_after_migrating_is_refused_naming_the_one_the_migrations_used() {
    let url = fresh_database(pg::shared()).await;
    let mut app = spawn_app_on(&url, &[]).await;
    app.stop().await;
    let app = spawn_app_unready(&url, &[("DEMO_SCHEMA", "pgsse_demo")]).await;
    let reason = not_ready_saying(&app, "schema pgsse already exists").await;
    assert!(
        reason.contains("have not run with DEMO_SCHEMA=pgsse_demo; they ran with DEMO_SCHEMA=public: set it back"),
        "{reason}"
    );
    let sql = app.sql().await;
    let schemas = sql
        .query(
            "select 1 from pg_namespace where nspname = 'pgsse_demo'",
            &[],
        )
        .await;
    assert!(schemas.is_empty(), "the refused schema was not left behind");
}
