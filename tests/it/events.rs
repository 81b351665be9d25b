//! Rows written by any SQL client become events on the stream, once, in commit order.

use serde_json::json;

use crate::support::{insert_board, spawn_app};

const INSERT_ALICE: &str = "insert into app_user(username) values ('alice');";
const INSERT_B1: &str = "insert into board(name, creator_id, dots) select 'b1', id, '[[0,0],[4,4]]' from app_user where username='alice';";
const INSERT_PATH: &str = "insert into path(board_id, user_id, points) select b.id, u.id, '[[0,0],[1,1],[2,1]]' from board b, app_user u where b.name='b1' and u.username='alice';";

#[test]
fn the_readme_and_sql_demo_hold_the_same_inserts() {
    let readme = include_str!("../../README.md");
    let demo = include_str!("../../sql/demo.sql");
    for insert in [INSERT_ALICE, INSERT_B1, INSERT_PATH] {
        assert!(readme.contains(&format!("pgsse=# {insert}\n")), "{insert}");
        assert!(demo.contains(&format!("{insert}\n")), "{insert}");
    }
}

/// A stream's text with the values that differ from one stream to the next (`client_id`,
/// `server_time`) blanked out.
fn without_varying_values(text: &str) -> String {
    let line = |line: &str| match line.strip_prefix("data:").map(serde_json::from_str) {
        Some(Ok(serde_json::Value::Object(mut data))) => {
            for field in ["client_id", "server_time"] {
                if let Some(value) = data.get_mut(field) {
                    *value = "…".into();
                }
            }
            format!("data:{}", serde_json::Value::Object(data))
        }
        _ => line.to_owned(),
    };
    text.lines().map(line).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn try_it_in_the_readme_shows_what_a_new_stream_sends_first() {
    let app = spawn_app().await;
    let client = app.stream().await;
    assert!(client.connection.is_some(), "{}", client.text());
    let readme = include_str!("../../README.md");
    let shown = readme
        .split("$ curl -N http://localhost:8000/sse/notifications/\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README's Try it shows a stream");
    assert_eq!(
        without_varying_values(&client.text()).trim_end(),
        without_varying_values(shown).trim_end()
    );
}

#[tokio::test]
async fn the_readme_inserts_typed_in_psql_each_produce_exactly_one_event_with_the_exact_json() {
    let app = spawn_app().await;
    let mut client = app.stream().await;
    let sql = app.sql().await;
    sql.exec(INSERT_ALICE).await;
    sql.exec(INSERT_B1).await;
    sql.exec(INSERT_PATH).await;
    let board_id: i64 = sql
        .one("select id from board where name = 'b1'", &[])
        .await
        .get(0);
    let path_id: i64 = sql.one("select id from path", &[]).await.get(0);

    let board = client.next_event().await;
    assert_eq!(board.event, "newBoard");
    assert_eq!(
        board.data,
        format!(r#"{{"board_id":{board_id},"board_name":"b1","creator_username":"alice"}}"#)
    );
    let path = client.next_event().await;
    assert_eq!(path.event, "newPath");
    assert_eq!(
        path.json(),
        json!({"path_id": path_id, "board_id": board_id, "board_name": "b1", "user_username": "alice"})
    );
    assert!(path.id() > board.id());

    // The board has dots and the path points, so that /boards/1 draws them.
    let drawn = app.get(&format!("/api/paths/{path_id}")).await.json();
    assert_eq!(drawn["points"], json!([[0, 0], [1, 1], [2, 1]]), "{drawn}");
    let board = app.get(&format!("/api/boards/{board_id}")).await.json();
    assert_eq!(board["dots"], json!([[0, 0], [4, 4]]), "{board}");

    // A later insert is the very next event: nothing else was sent in between.
    let sentinel = insert_board(&sql, "alice", "sentinel").await;
    assert_eq!(
        client.next_event().await.json()["board_id"],
        json!(sentinel)
    );
}

#[tokio::test]
async fn nothing_arrives_before_commit_and_a_rolled_back_insert_produces_nothing() {
    let app = spawn_app().await;
    let mut client = app.stream().await;
    let sql = app.sql().await;
    let open = app.sql().await;
    let aborted = app.sql().await;
    sql.exec(INSERT_ALICE).await;

    open.exec("begin").await;
    open.exec(INSERT_B1).await;
    aborted.exec("begin").await;
    aborted
        .exec("insert into board(name, creator_id) select 'never', id from app_user")
        .await;
    aborted.exec("rollback").await;
    // Commit order decides: this board commits first, so it must be the first event.
    let first = insert_board(&sql, "alice", "first").await;
    assert_eq!(client.next_event().await.json()["board_id"], json!(first));

    open.exec("commit").await;
    let committed = client.next_event().await;
    assert_eq!(committed.json()["board_name"], "b1");
    let last = insert_board(&sql, "alice", "last").await;
    assert_eq!(client.next_event().await.json()["board_id"], json!(last));
    let kinds: i64 = sql
        .one("select count(*) from pgsse.event", &[])
        .await
        .get(0);
    assert_eq!(kinds, 3, "the rolled-back board left no event in the table");
}

#[tokio::test]
async fn out_of_order_commits_are_delivered_in_commit_order_with_increasing_ids() {
    let app = spawn_app().await;
    let mut client = app.stream().await;
    let sql = app.sql().await;
    sql.exec(INSERT_ALICE).await;
    let t1 = app.sql().await;
    let t2 = app.sql().await;
    t1.exec("begin; insert into board(name, creator_id) select 't1', id from app_user")
        .await;
    t2.exec("begin; insert into board(name, creator_id) select 't2', id from app_user")
        .await;
    t2.exec("commit").await;
    t1.exec("commit").await;

    let received = [client.next_event().await, client.next_event().await];
    let names: Vec<_> = received
        .iter()
        .map(|e| e.json()["board_name"].clone())
        .collect();
    assert_eq!(names, [json!("t2"), json!("t1")]);
    assert!(received[0].id() < received[1].id());
    let table: Vec<(i64, String)> = sql
        .query(
            "select id, payload->>'board_name' from pgsse.event order by id",
            &[],
        )
        .await
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let delivered: Vec<(i64, String)> = received
        .iter()
        .map(|e| (e.id(), e.json()["board_name"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(table, delivered);
}

#[tokio::test]
async fn huge_and_awkward_board_names_arrive_intact_and_keep_the_framing_valid() {
    let app = spawn_app().await;
    let mut client = app.stream().await;
    let sql = app.sql().await;
    let names = [
        "x".repeat(20_000),
        r#"quotes " and ' and \ backslash"#.to_owned(),
        "line one\nline two".to_owned(),
        "carriage\rreturn and\r\nCRLF".to_owned(),
        "emoji 🎉👩‍💻 and ünïcödé".to_owned(),
        "data: fake\n\nevent: newPath\nid: 999\n\n".to_owned(),
        ": not a comment".to_owned(),
    ];
    for name in &names {
        insert_board(&sql, "alice", name).await;
    }
    for name in &names {
        let event = client.next_event().await;
        assert_eq!(event.event, "newBoard");
        assert_eq!(event.json()["board_name"], json!(name));
        assert_eq!(event.json()["creator_username"], "alice");
    }
    let raw = client.text();
    assert!(
        !raw.contains('\r'),
        "no raw carriage return reaches the stream"
    );
    let data_lines = raw.lines().filter(|l| l.starts_with("data:")).count();
    // One data line per event, and one for the connection event the stream opened with.
    assert_eq!(data_lines, names.len() + 1, "one data line per event");
    let stored: String = sql
        .one(
            "select payload->>'board_name' from pgsse.event order by id limit 1",
            &[],
        )
        .await
        .get(0);
    assert_eq!(stored.len(), 20_000);
}

#[tokio::test]
async fn a_board_created_through_the_api_produces_its_event() {
    let app = spawn_app().await;
    let mut client = app.stream().await;
    assert_eq!(
        app.post("/api/users", &json!({"username": "bob"}))
            .await
            .status,
        201
    );
    let created = app
        .post(
            "/api/boards",
            &json!({"name": "api board", "creator": "bob"}),
        )
        .await;
    assert_eq!(created.status, 201);
    let event = client.next_event().await;
    assert_eq!(event.event, "newBoard");
    assert_eq!(
        event.json(),
        json!({"board_id": created.json()["id"], "board_name": "api board", "creator_username": "bob"})
    );
    let path = app
        .post(
            &format!("/api/boards/{}/paths", created.json()["id"]),
            &json!({"user": "bob", "points": [[0, 0], [1, 1]]}),
        )
        .await;
    assert_eq!(path.status, 201);
    let event = client.next_event().await;
    assert_eq!(event.event, "newPath");
    assert_eq!(event.json()["path_id"], path.json()["id"]);
}

#[tokio::test]
async fn concurrent_clients_all_receive_every_event_in_the_same_order() {
    let app = spawn_app().await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(app.stream().await);
    }
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = app.database_url.clone();
            tokio::spawn(async move {
                let sql = crate::support::connect(&url).await;
                for i in 0..25 {
                    insert_board(&sql, &format!("writer{w}"), &format!("w{w}-{i}")).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut sequences = Vec::new();
    for client in &mut clients {
        let mut ids = Vec::new();
        for _ in 0..100 {
            ids.push(client.next_event().await.id());
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
        sequences.push(ids);
    }
    assert!(
        sequences.windows(2).all(|w| w[0] == w[1]),
        "every client saw the same sequence"
    );
    let sql = app.sql().await;
    let table: Vec<i64> = sql
        .query("select id from pgsse.event order by id", &[])
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(sequences[0], table);
}
