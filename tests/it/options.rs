//! The stream's opt-in options: recent history on opening (`?history=N`) and every event in an
//! envelope (`?envelope=1`), as bytes on the stream.

use serde_json::json;

use crate::support::http::request;
use crate::support::sse::SseEvent;
use crate::support::{insert_board, spawn_app, TestApp};

/// Inserts boards `names` and returns their events as a live stream received them, so the
/// gateway has published every one of them when this returns.
async fn boards(app: &TestApp, names: &[&str]) -> Vec<SseEvent> {
    let mut live = app.stream().await;
    let sql = app.sql().await;
    for name in names {
        insert_board(&sql, "olga", name).await;
    }
    let mut events = Vec::new();
    for _ in names {
        events.push(live.next_event().await);
    }
    events
}

#[tokio::test]
async fn a_new_stream_with_history_replays_the_events_among_the_last_n_ids_then_goes_live() {
    let app = spawn_app().await;
    let before = boards(&app, &["b1", "b2", "b3", "b4", "b5"]).await;
    let newest = before.last().unwrap().id();
    let mut stream = app.sse("/sse/notifications/?history=3", &[]).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.last_event_id, Some((newest - 3).to_string()));
    let recent: Vec<_> = before.iter().filter(|e| e.id() > newest - 3).collect();
    assert!(!recent.is_empty());
    for expected in recent {
        assert_eq!(&stream.next_event().await, expected);
    }
    let after = boards(&app, &["b6"]).await;
    assert_eq!(stream.next_event().await, after[0], "then live events");
}

#[tokio::test]
async fn a_stream_that_resumes_gets_what_it_missed_and_no_history_however_many_ids_it_asks_for() {
    let app = spawn_app().await;
    let before = boards(&app, &["c1", "c2", "c3", "c4"]).await;
    let resume = before[2].id().to_string();
    let mut stream = app
        .sse(
            "/sse/notifications/?history=100",
            &[("Last-Event-ID", &resume)],
        )
        .await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.last_event_id, Some(resume));
    assert_eq!(stream.next_event().await, before[3]);
    let after = boards(&app, &["c5"]).await;
    assert_eq!(stream.next_event().await, after[0], "then live events");
}

#[tokio::test]
async fn an_enveloped_stream_sends_every_event_unnamed_with_its_kind_inside_its_data() {
    let app = spawn_app().await;
    let mut plain = app.stream().await;
    let mut enveloped = app.sse("/sse/notifications/?envelope=1", &[]).await;
    assert_eq!(enveloped.status, 200);
    let connection = enveloped.connection.clone().unwrap();
    assert_eq!(connection.event, "message");
    assert_eq!(connection.json()["kind"], "connection");
    assert_eq!(connection.json()["data"]["authenticated"], false);

    let sql = app.sql().await;
    sql.exec(r#"select pgsse.publish('deploy.finished', '{"version": "v2.1"}')"#)
        .await;
    let named = plain.next_event().await;
    assert_eq!(named.event, "deploy.finished");
    assert_eq!(named.json(), json!({"version": "v2.1"}));
    let event = enveloped.next_event().await;
    assert_eq!(event.id, named.id, "the same id");
    assert_eq!(event.event, "message");
    assert_eq!(
        event.json(),
        json!({"kind": "deploy.finished", "data": {"version": "v2.1"}})
    );
    assert!(
        !enveloped.text().contains("event:"),
        "no named block: {}",
        enveloped.text()
    );
}

#[tokio::test]
async fn bad_history_or_envelope_values_are_refused_with_json_before_the_stream_starts() {
    let app = spawn_app().await;
    for (query, field) in [
        ("history=0", "history"),
        ("history=101", "history"),
        ("history=ten", "history"),
        ("envelope=yes", "envelope"),
        ("envelope=2", "envelope"),
    ] {
        let path = format!("/sse/notifications/?{query}");
        let refused = request(app.addr, "GET", &path, &[], None).await;
        assert_eq!(refused.status, 400, "{query}");
        let body = refused.json();
        assert_eq!(body["field"], field, "{query}: {body}");
        let value = query.split_once('=').unwrap().1;
        assert!(
            body["error"].as_str().unwrap().contains(value),
            "{query}: {body}"
        );
    }
}
