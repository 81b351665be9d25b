//! Data no statement can use to stop delivery: whatever a publisher puts in an event's data, the
//! gateway passes it through as the database wrote it, and the events after it still arrive.

use crate::support::sse::SseClient;
use crate::support::{insert_board, newest_event, spawn_app, TestApp};

const STREAM: &str = "/sse/notifications/";

/// JSON nested `levels` deep, as an object's member: `{"deep":[[…1…]]}`.
fn nested(levels: usize) -> String {
    format!("{{\"deep\":{}1{}}}", "[".repeat(levels), "]".repeat(levels))
}

/// Publishes `data` as an event of `kind` from SQL, as an application role would.
async fn publish(app: &TestApp, kind: &str, data: &str) {
    let sql = app.sql().await;
    let statement = "select pgsse.publish($1, $2::text::jsonb)";
    sql.query(statement, &[&kind, &data]).await;
}

/// Reads the next event of `kind` and returns its data.
async fn data_of(client: &mut SseClient, kind: &str) -> String {
    let event = client.next_event().await;
    assert_eq!(event.event, kind, "{event:?}");
    event.data
}

#[tokio::test]
async fn data_nested_deeper_than_a_json_parser_allows_reaches_live_and_resuming_clients() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    insert_board(&sql, "alice", "before").await;
    let before = newest_event(&sql).await;
    let mut live = app.stream().await;

    // Small enough to travel in the notification, and large enough to travel as a reference
    // and be read from the table; then numbers outside an f64 and an i64. Each is written as
    // jsonb writes it back (members ordered by the length of their names), less the spaces.
    let deep = nested(130);
    let deep_and_big = format!(
        "{{\"pad\":\"{}\",\"deep\":{}1{}}}",
        "x".repeat(2000),
        "[".repeat(3000),
        "]".repeat(3000)
    );
    let huge = format!("1{}", "0".repeat(400));
    let numbers =
        format!(r#"{{"big":{huge},"long":123456789012345678901234567890,"board_id":{huge}}}"#);
    publish(&app, "x.deep", &deep).await;
    publish(&app, "x.big", &deep_and_big).await;
    publish(&app, "x.numbers", &numbers).await;
    insert_board(&sql, "alice", "after").await;

    let before = before.to_string();
    let mut resuming = SseClient::connect(app.addr, STREAM, &[("Last-Event-ID", &before)]).await;
    for client in [&mut live, &mut resuming] {
        assert_eq!(data_of(client, "x.deep").await, deep);
        assert_eq!(data_of(client, "x.big").await, deep_and_big);
        assert_eq!(data_of(client, "x.numbers").await, numbers);
        let after = client.next_event().await;
        assert_eq!(after.json()["board_name"], "after");
    }
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
}

#[tokio::test]
async fn a_notification_row_with_deep_data_reaches_its_user_and_the_stream_goes_on() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    sql.exec("insert into app_user(username) values ('bob')")
        .await;
    let mut bob = app.sse(&format!("{STREAM}?userId=bob"), &[]).await;
    let deep = nested(200);
    sql.query(
        "insert into notification(user_id, kind, data) \
         select id, 'x.deep', $1::text::jsonb from app_user where username = 'bob'",
        &[&deep],
    )
    .await;
    insert_board(&sql, "alice", "after").await;
    assert_eq!(data_of(&mut bob, "x.deep").await, deep);
    assert_eq!(bob.next_event().await.json()["board_name"], "after");
}
