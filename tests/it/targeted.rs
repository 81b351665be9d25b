//! Events for one user or one stream, published from SQL or the API: each stream gets exactly
//! the broadcasts and its own events, across resumes; bad publications are refused and write
//! nothing; the per-user stream limit and the stream listing.

use serde_json::{json, Value};

use crate::support::checker::{check_for, Recorder, Resume};
use crate::support::http::request;
use crate::support::{insert_board, newest_event, spawn_app, spawn_app_with, Sql, TestApp, WAIT};

const SECRET: &str = "a test secret that is long enough for HS256";

fn token(user: &str, admin: bool, exp_in: i64) -> String {
    let verifier = pgsse::auth::Verifier::new(SECRET);
    verifier.sign(&pgsse::auth::Claims {
        sub: user.into(),
        role: admin.then(|| "admin".into()),
        exp: (pgsse::auth::now() as i64 + exp_in) as u64,
        nbf: None,
    })
}

async fn send(app: &TestApp, admin_token: &str, body: &Value) -> crate::support::http::Response {
    let body = serde_json::to_vec(body).unwrap();
    let auth = format!("Bearer {admin_token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    request(app.addr, "POST", "/api/sse/send", &headers, Some(&body)).await
}

async fn counts(sql: &Sql) -> (i64, i64) {
    let row = sql
        .one(
            "select (select count(*) from pgsse.event), (select count(*) from pgsse.outbox)",
            &[],
        )
        .await;
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn every_stream_gets_the_broadcasts_and_only_its_own_targeted_events_across_a_resume() {
    let app = spawn_app_with(&[("AUTH_JWT_SECRET", SECRET)]).await;
    let sql = app.sql().await;
    let users = ["u0", "u1", "u2", "u3"];
    for user in users {
        sql.query("insert into app_user(username) values ($1)", &[&user])
            .await;
    }
    let mut streams = Vec::new();
    for user in users {
        let path = format!(
            "/sse/notifications/?access_token={}",
            token(user, false, 600)
        );
        streams.push(Recorder::connect(app.addr, &path, Some(0)).await);
    }
    let admin = token("root", true, 600);
    for round in 0..10 {
        let user = users[round % users.len()];
        insert_board(&sql, "u0", &format!("board {round}")).await;
        sql.query(
            "insert into notification(user_id, kind, data) select id, 'message', $2 from app_user where username = $1",
            &[&user, &json!({ "round": round })],
        )
        .await;
        sql.query(
            "select pgsse.publish('ping', $1, $2)",
            &[&json!({ "round": round }), &users[(round + 1) % 4]],
        )
        .await;
        let to = users[(round + 2) % 4];
        let sent = send(
            &app,
            &admin,
            &json!({"type": "direct", "data": {"round": round}, "target": {"userId": to}}),
        )
        .await;
        assert_eq!(sent.status, 202, "{}", sent.text());
        sql.query(
            "select pgsse.publish('system.notice', $1)",
            &[&json!({ "round": round })],
        )
        .await;
        if round == 4 {
            // Half way, every stream drops and resumes, by header or by query.
            for (i, stream) in streams.iter_mut().enumerate() {
                stream.read(3).await;
                let how = if i % 2 == 0 {
                    Resume::Header
                } else {
                    Resume::Query
                };
                stream.reconnect(app.addr, how).await;
            }
        }
    }
    let last = send(&app, &admin, &json!({"type": "done"})).await.json()["id"]
        .as_i64()
        .unwrap();
    for (user, stream) in users.iter().zip(&mut streams) {
        stream.read_through(last).await;
        check_for(&sql, stream, Some(user), 0, last)
            .await
            .assert_clean(user);
        let own = stream
            .events()
            .filter(|e| ["message", "ping", "direct"].contains(&e.event.as_str()));
        // Per user and round-robin over 10 rounds: 2 or 3 of each targeted kind.
        assert!(own.count() >= 6, "{user} received its targeted events");
    }
}

#[tokio::test]
async fn targets_by_client_and_session_reach_only_the_streams_that_declared_them() {
    let app = spawn_app().await;
    let mut tab1 = app.sse("/sse/notifications/?clientId=tab1", &[]).await;
    let mut tab2 = app
        .sse("/sse/notifications/?clientId=tab2&sessionId=s1", &[])
        .await;
    let mut alice = app.sse("/sse/notifications/?userId=alice", &[]).await;
    assert_eq!(
        tab1.connection.as_ref().unwrap().json()["client_id"],
        "tab1"
    );
    let sql = app.sql().await;
    sql.exec("insert into app_user(username) values ('alice')")
        .await;
    let to_tab1 = app
        .post(
            "/api/sse/send",
            &json!({"type": "t", "data": {"n": 1}, "target": {"clientId": "tab1"}}),
        )
        .await;
    assert_eq!(to_tab1.status, 202, "{}", to_tab1.text());
    app.post(
        "/api/sse/send",
        &json!({"type": "t", "data": {"n": 2}, "target": {"sessionId": "s1"}}),
    )
    .await;
    app.post(
        "/api/sse/send",
        &json!({"type": "t", "data": {"n": 3}, "target": {"userId": "alice"}}),
    )
    .await;
    app.post(
        "/api/sse/send",
        &json!({"type": "t", "data": {"n": 4}, "target": {"userId": "alice", "clientId": "tab1"}}),
    )
    .await;
    app.post("/api/sse/send", &json!({"type": "all", "data": {}}))
        .await;
    let received = |events: Vec<crate::support::sse::SseEvent>| -> Vec<Value> {
        events
            .iter()
            .map(|e| e.json().get("n").cloned().unwrap_or(Value::Null))
            .collect()
    };
    assert_eq!(
        received(vec![tab1.next_event().await, tab1.next_event().await]),
        [json!(1), Value::Null]
    );
    assert_eq!(
        received(vec![tab2.next_event().await, tab2.next_event().await]),
        [json!(2), Value::Null]
    );
    assert_eq!(
        received(vec![alice.next_event().await, alice.next_event().await]),
        [json!(3), Value::Null]
    );
    assert_eq!(
        to_tab1.json()["id"].as_i64(),
        Some(tab1_first_id(&sql).await)
    );
}

async fn tab1_first_id(sql: &Sql) -> i64 {
    sql.one(
        "select id from pgsse.event where client_id = 'tab1' order by id limit 1",
        &[],
    )
    .await
    .get(0)
}

#[tokio::test]
async fn a_notification_row_reaches_its_user_only_named_after_its_kind() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    sql.exec("insert into app_user(username) values ('alice'), ('bob')")
        .await;
    let mut alice = app.sse("/sse/notifications/?userId=alice", &[]).await;
    let mut bob = app.sse("/sse/notifications/?userId=bob", &[]).await;
    sql.exec(
        "insert into notification(user_id, kind, data) \
         select id, 'friend.request', '{\"from\": \"bob\", \"note\": null}' from app_user where username = 'alice'",
    )
    .await;
    sql.exec("insert into notification(user_id) select id from app_user where username = 'bob'")
        .await;
    let event = alice.next_event().await;
    assert_eq!(event.event, "friend.request");
    assert_eq!(event.data, r#"{"from":"bob","note":null}"#);
    let event = bob.next_event().await;
    assert_eq!(
        (event.event.as_str(), event.data.as_str()),
        ("notification", "{}")
    );
    // Alice got nothing of Bob's: her next event is the next broadcast.
    insert_board(&sql, "alice", "after").await;
    assert_eq!(alice.next_event().await.event, "newBoard");
}

#[tokio::test]
async fn bad_publications_are_refused_with_clear_errors_and_write_nothing() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    sql.exec("insert into app_user(username) values ('alice')")
        .await;
    let before = counts(&sql).await;
    let big = json!({ "blob": "x".repeat(70_000) });
    let sql_cases: [(&str, Value, Option<&str>, &str); 5] = [
        ("bad kind!", json!({}), None, "invalid event kind"),
        ("", json!({}), None, "invalid event kind"),
        ("newBoard", json!({}), None, "reserved"),
        ("x", json!([1, 2]), None, "must be a JSON object"),
        ("x", big.clone(), None, "the limit is 65536"),
    ];
    for (kind, data, recipient, says) in sql_cases {
        let err = sql
            .try_query(
                "select pgsse.publish($1, $2, $3)",
                &[&kind, &data, &recipient],
            )
            .await
            .expect_err("refused");
        let message = err.as_db_error().unwrap().message().to_owned();
        assert!(message.contains(says), "{kind}: {message}");
    }
    let err = sql
        .try_exec("insert into notification(user_id, kind) select id, 'newPath' from app_user")
        .await
        .expect_err("refused");
    assert!(err.as_db_error().unwrap().message().contains("reserved"));
    assert_eq!(counts(&sql).await, before, "nothing was written");

    let api_cases = [
        (json!({"type": "bad kind!"}), 400, "invalid event kind"),
        (json!({"type": "newPath"}), 400, "reserved"),
        (
            json!({"type": "x", "data": "text"}),
            400,
            "must be a JSON object",
        ),
        (
            json!({"type": "x", "target": {"userId": 999999}}),
            422,
            "there is no user 999999",
        ),
        (
            json!({"type": "x", "target": {"user": "alice"}}),
            400,
            "unknown field",
        ),
        (json!({"data": {}}), 400, "missing field `type`"),
        (json!({"type": "x", "data": big}), 413, "over the limit"),
    ];
    for (body, status, says) in api_cases {
        let response = app.post("/api/sse/send", &body).await;
        assert_eq!(response.status, status, "{body}: {}", response.text());
        let message = response.json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert_eq!(counts(&sql).await, before, "nothing was written");
}

/// Publishes to `user` (who has no app_user row) in a transaction that also writes one of the
/// application's own rows, then a broadcast; both commit.
async fn publish_with_the_applications_write(sql: &Sql, user: &str) {
    sql.exec("create table if not exists orders (id int primary key, customer text)")
        .await;
    sql.query(
        "with o as (insert into orders values (1, $1) returning customer) \
         select pgsse.publish('order.shipped', '{\"order\": 1}', o.customer) from o",
        &[&user],
    )
    .await;
    sql.exec("select pgsse.publish('system.notice', '{}')")
        .await;
    let orders = sql.one("select count(*) from orders", &[]).await;
    assert_eq!(
        orders.get::<_, i64>(0),
        1,
        "the application's write committed"
    );
}

#[tokio::test]
async fn a_recipient_without_an_app_user_row_gets_its_events_and_no_one_else_does() {
    let user = "kc-5f2b9c1e";
    for auth in [true, false] {
        let app = match auth {
            true => spawn_app_with(&[("AUTH_JWT_SECRET", SECRET)]).await,
            false => spawn_app().await,
        };
        let path = |who: &str| match auth {
            true => format!(
                "/sse/notifications/?access_token={}",
                token(who, false, 600)
            ),
            false => format!("/sse/notifications/?userId={who}"),
        };
        let mut recipient = app.sse(&path(user), &[]).await;
        let mut other = app.sse(&path("someone-else"), &[]).await;
        let sql = app.sql().await;
        publish_with_the_applications_write(&sql, user).await;
        let event = recipient.next_event().await;
        assert_eq!(
            (event.event.as_str(), event.data.as_str()),
            ("order.shipped", r#"{"order":1}"#),
            "authentication on: {auth}"
        );
        assert_eq!(recipient.next_event().await.event, "system.notice");
        assert_eq!(other.next_event().await.event, "system.notice");

        // The API's send takes any username too.
        let body = json!({"type": "direct", "target": {"userId": user}});
        let sent = match auth {
            true => send(&app, &token("root", true, 600), &body).await,
            false => app.post("/api/sse/send", &body).await,
        };
        assert_eq!(sent.status, 202, "{}", sent.text());
        assert_eq!(recipient.next_event().await.event, "direct");
        let none = sql.one("select count(*) from app_user", &[]).await;
        assert_eq!(none.get::<_, i64>(0), 0, "no app_user row was needed");
    }
}

#[tokio::test]
async fn beyond_max_streams_per_user_the_oldest_closes_and_the_listing_shows_who_is_connected() {
    let app = spawn_app_with(&[("MAX_STREAMS_PER_USER", "2")]).await;
    let mut first = app
        .sse("/sse/notifications/?userId=alice&clientId=first", &[])
        .await;
    let mut second = app
        .sse(
            "/sse/notifications/?userId=alice&clientId=second&events=newBoard",
            &[],
        )
        .await;
    let mut bob = app
        .sse("/sse/notifications/?userId=bob&sessionId=s9", &[])
        .await;
    let mut third = app
        .sse("/sse/notifications/?userId=alice&clientId=third", &[])
        .await;
    assert!(
        first.ends_within(WAIT).await,
        "the oldest stream of alice was closed"
    );
    let sql = app.sql().await;
    let board = insert_board(&sql, "alice", "seen").await;
    for stream in [&mut second, &mut bob, &mut third] {
        assert_eq!(stream.next_event().await.json()["board_id"], json!(board));
    }
    let listed = app.get("/api/sse/clients").await;
    assert_eq!(listed.status, 200);
    let clients = listed.json()["clients"].as_array().unwrap().clone();
    let by_id = |id: &str| clients.iter().find(|c| c["client_id"] == id).cloned();
    assert_eq!(by_id("first"), None, "the closed stream is gone");
    let second = by_id("second").expect("listed");
    assert_eq!(second["user"], "alice");
    assert_eq!(
        second["filters"],
        json!({"events": ["newBoard"], "board_id": null, "topic": null})
    );
    let event_id = newest_event(&sql).await;
    assert_eq!(second["last_event_id"], json!(event_id));
    assert!(second["connected_since"].as_str().unwrap().ends_with('Z'));
    let bob = clients
        .iter()
        .find(|c| c["user"] == "bob")
        .expect("bob listed");
    assert_eq!(bob["session_id"], "s9");
    assert_eq!(clients.len(), 3);
}

#[tokio::test]
async fn stream_names_are_checked_before_the_stream_starts() {
    let app = spawn_app().await;
    for (query, field) in [
        ("userId=a%20b", "userId"),
        ("clientId=x%0Ay", "clientId"),
        ("sessionId=%22", "sessionId"),
    ] {
        let response = request(
            app.addr,
            "GET",
            &format!("/sse/notifications/?{query}"),
            &[],
            None,
        )
        .await;
        assert_eq!(response.status, 400, "{query}");
        assert_eq!(response.json()["field"], field);
    }
}
