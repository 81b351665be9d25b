//! `GET /api/events`: every kind of event the gateway can send, with the JSON Schema of its
//! data; a watched kind's derived from its columns' types. The schemas are checked against what
//! the stream actually sends.

use serde_json::{json, Value};

use crate::support::sse::{SseClient, SseEvent};
use crate::support::{insert_board, newest_event, spawn_app, Sql, TestApp};

const TABLES: &str = "\
    create type order_status as enum ('new', 'paid', 'shipped'); \
    create table orders ( \
        id bigint generated always as identity primary key, \
        quantity int, \
        total numeric(10, 2), \
        customer text not null, \
        gift boolean, \
        placed_at timestamptz not null default now(), \
        details jsonb, \
        tags text[], \
        status order_status not null default 'new', \
        note text); \
    create schema shop; \
    create table shop.visits ( \
        id integer primary key, \
        ref uuid, \
        day date, \
        score double precision, \
        visitor text not null, \
        seen smallint[]); \
    select pgsse.watch('orders', kind => 'order', \
        operations => array['insert', 'update', 'delete'], \
        columns => array['id', 'quantity', 'total', 'customer', 'gift', 'placed_at', \
                         'details', 'tags', 'status'], \
        topic => 'customer'); \
    select pgsse.watch('shop.visits', kind => 'visit', recipient => 'lower(visitor)', \
        filter => 'score > 0')";

/// The listing, and its `Pgsse-Position` header.
pub async fn listing(app: &TestApp) -> (Vec<Value>, i64) {
    let answer = app.get("/api/events").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let position = answer.header("pgsse-position").expect("a Pgsse-Position");
    let position = position.parse().expect("a position is a number");
    let kinds = answer.json()["kinds"].as_array().expect("kinds").clone();
    (kinds, position)
}

fn names(kinds: &[Value]) -> Vec<&str> {
    kinds.iter().map(|k| k["kind"].as_str().unwrap()).collect()
}

fn schema_of<'k>(kinds: &'k [Value], kind: &str) -> &'k Value {
    let listed = kinds.iter().find(|k| k["kind"] == kind);
    &listed.unwrap_or_else(|| panic!("{kind} is not listed"))["schema"]
}

/// A schema without its descriptions, which the tests compare apart.
fn undescribed(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => map
            .iter()
            .filter(|(key, value)| *key != "description" || !value.is_string())
            .map(|(key, value)| (key.clone(), undescribed(value)))
            .collect(),
        Value::Array(items) => items.iter().map(undescribed).collect(),
        other => other.clone(),
    }
}

/// The schema of a watched kind's data with this row schema and these operations.
fn watched(row: Value, operations: &[&str]) -> Value {
    let columns: Vec<&String> = row.as_object().unwrap().keys().collect();
    let shapes: Vec<Value> = operations
        .iter()
        .map(|op| {
            let mut properties = json!({"op": {"const": op}, "row": {"$ref": "#/$defs/row"}});
            let mut required = json!(["op", "row"]);
            if *op == "update" {
                properties["changed"] = json!({"type": "array", "items": {"enum": columns},
                                               "minItems": 1, "uniqueItems": true});
                required = json!(["op", "row", "changed"]);
            }
            json!({"type": "object", "properties": properties, "required": required,
                   "additionalProperties": false})
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "oneOf": shapes,
        "$defs": {"row": {"type": "object", "properties": row, "required": columns,
                          "additionalProperties": false}},
    })
}

/// Checks an event's data against the schema the listing gives its kind, formats included.
pub fn assert_valid(kinds: &[Value], event: &SseEvent) {
    let schema = schema_of(kinds, &event.event);
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("the schema compiles");
    let data = event.json();
    if let Err(err) = validator.validate(&data) {
        panic!(
            "{} {data} does not match its schema: {err}\n{schema}",
            event.event
        );
    }
}

async fn events_until_done(stream: &mut SseClient, sql: &Sql) -> Vec<SseEvent> {
    sql.exec("select pgsse.publish('done', '{}')").await;
    let mut events = Vec::new();
    loop {
        let event = stream.next_event().await;
        if event.event == "done" {
            return events;
        }
        events.push(event);
    }
}

#[tokio::test]
async fn the_listing_gives_each_watched_kind_with_the_schema_its_columns_types_make() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    sql.exec(TABLES).await;
    insert_board(&sql, "ann", "b").await;
    let (kinds, position) = listing(&app).await;
    assert_eq!(position, newest_event(&sql).await);
    assert_eq!(
        names(&kinds),
        [
            "connection",
            "resync",
            "newBoard",
            "newPath",
            "order",
            "visit"
        ]
    );
    for kind in &kinds {
        let valid = jsonschema::meta::validate(&kind["schema"]);
        assert!(valid.is_ok(), "{}: {valid:?}", kind["kind"]);
    }

    let mut order = kinds[4].clone();
    let schema = order["schema"].take();
    assert_eq!(
        order,
        json!({"kind": "order", "source": "watch", "table": "orders",
               "operations": ["delete", "insert", "update"], "topic": true, "targeted": false,
               "schema": null})
    );
    let row = json!({
        "id": {"type": "integer"},
        "quantity": {"type": ["integer", "null"]},
        "total": {"type": ["number", "null"]},
        "customer": {"type": "string"},
        "gift": {"type": ["boolean", "null"]},
        "placed_at": {"type": "string", "format": "date-time"},
        "details": {},
        "tags": {"type": ["array", "null"], "items": {"type": ["string", "null"]}},
        "status": {"type": "string", "enum": ["new", "paid", "shipped"]},
    });
    let operations = ["delete", "insert", "update"];
    assert_eq!(undescribed(&schema), watched(row, &operations));
    let columns = &schema["$defs"]["row"]["properties"];
    let id = columns["id"]["description"].as_str().unwrap();
    assert!(id.starts_with("bigint: ") && id.contains("2^53"), "{id}");
    assert_eq!(
        columns["total"]["description"].as_str().unwrap(),
        "numeric(10,2): NaN and Infinity, which PostgreSQL allows, come as the strings \"NaN\", \
         \"Infinity\" and \"-Infinity\""
    );
    assert_eq!(columns["status"]["description"], "order_status");

    let mut visit = kinds[5].clone();
    let schema = visit["schema"].take();
    assert_eq!(
        visit,
        json!({"kind": "visit", "source": "watch", "table": "shop.visits",
               "operations": ["insert"], "topic": false, "targeted": true, "schema": null})
    );
    let row = json!({
        "id": {"type": "integer"},
        "ref": {"type": ["string", "null"], "format": "uuid"},
        "day": {"type": ["string", "null"], "format": "date"},
        "score": {"type": ["number", "null"]},
        "visitor": {"type": "string"},
        "seen": {"type": ["array", "null"], "items": {"type": ["integer", "null"]}},
    });
    assert_eq!(undescribed(&schema), watched(row, &["insert"]));
    // The definitions' expressions are the application's: the listing does not show them.
    let text = app.get("/api/events").await.text();
    assert!(
        !text.contains("score > 0") && !text.contains("lower("),
        "{text}"
    );
}

#[tokio::test]
async fn every_event_the_stream_sends_matches_the_schema_listed_for_its_kind() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    sql.exec(TABLES).await;
    let (kinds, _) = listing(&app).await;
    let mut stream = app.sse("/sse/notifications/?userId=ann", &[]).await;
    let connection = stream.connection.clone().expect("a connection event");
    assert_valid(&kinds, &connection);
    insert_board(&sql, "ann", "b").await;
    sql.exec(
        "insert into path (board_id, user_id) select id, creator_id from board; \
         insert into orders (quantity, total, customer, gift, details, tags, status) \
             values (2, 12.50, 'ann', true, '{\"a\": [1, null]}', array['x', null], 'paid'); \
         insert into orders (customer) values ('bob'); \
         update orders set status = 'shipped', tags = '{}' where customer = 'ann'; \
         delete from orders where customer = 'bob'; \
         insert into shop.visits values \
             (1, gen_random_uuid(), '2026-01-31', 0.5, 'ann', array[1, null, 3]), \
             (2, null, null, 1e300, 'ann', null)",
    )
    .await;
    let events = events_until_done(&mut stream, &sql).await;
    let sent: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    let expected = [
        "newBoard", "newPath", "order", "order", "order", "order", "visit", "visit",
    ];
    assert_eq!(sent, expected);
    for event in &events {
        assert_valid(&kinds, event);
    }

    // The schemas say more than "an object": data the stream never sends does not match them.
    let order = jsonschema::validator_for(schema_of(&kinds, "order")).unwrap();
    let updated = events[4].json();
    let mut unchanged = updated.clone();
    unchanged.as_object_mut().unwrap().remove("changed");
    let mut lost = updated.clone();
    lost["row"]["status"] = json!("lost");
    let mut nameless = events[2].json();
    nameless["row"]["customer"] = Value::Null;
    for wrong in [unchanged, lost, nameless] {
        assert!(!order.is_valid(&wrong), "{wrong}");
    }
}

#[tokio::test]
async fn watching_again_changes_the_listing_and_unwatching_removes_the_kind() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    sql.exec(TABLES).await;
    sql.exec("select pgsse.watch('orders', kind => 'purchase', columns => array['id', 'note'])")
        .await;
    let (kinds, _) = listing(&app).await;
    assert_eq!(
        names(&kinds),
        [
            "connection",
            "resync",
            "newBoard",
            "newPath",
            "purchase",
            "visit"
        ]
    );
    let row = json!({"id": {"type": "integer"}, "note": {"type": ["string", "null"]}});
    let schema = undescribed(schema_of(&kinds, "purchase"));
    assert_eq!(schema, watched(row, &["insert"]));

    sql.exec("select pgsse.unwatch('orders'); select pgsse.unwatch('shop.visits')")
        .await;
    let (kinds, _) = listing(&app).await;
    assert_eq!(
        names(&kinds),
        ["connection", "resync", "newBoard", "newPath"]
    );
}
