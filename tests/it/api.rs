//! The REST API: what it creates, what it returns, and a JSON error with the right status for
//! every kind of bad input, with nothing written.

use serde_json::{json, Value};

use crate::support::http::request;
use crate::support::{connect, fresh_database, pg, spawn_app, spawn_app_unready, TestApp};

/// Row counts of every table the API writes, to show a rejected request wrote nothing.
async fn counts(app: &TestApp) -> Vec<i64> {
    let sql = app.sql().await;
    let mut counts = Vec::new();
    for table in ["app_user", "board", "path", "pgsse.event"] {
        let row = sql.one(&format!("select count(*) from {table}"), &[]).await;
        counts.push(row.get(0));
    }
    counts
}

/// Sends `body` raw and expects an error with `status`, a JSON `error` message containing
/// `says`, and no row written.
async fn rejects(
    app: &TestApp,
    method: &str,
    path: &str,
    body: &[u8],
    status: u16,
    says: &str,
) -> Value {
    let before = counts(app).await;
    let response = request(
        app.addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        Some(body),
    )
    .await;
    assert_eq!(
        response.status,
        status,
        "{method} {path} {:?}: {}",
        String::from_utf8_lossy(body),
        response.text()
    );
    assert_eq!(response.header("content-type"), Some("application/json"));
    let json = response.json();
    let message = json["error"].as_str().expect("an error message");
    assert!(
        message.contains(says),
        "{message:?} should mention {says:?}"
    );
    assert_eq!(counts(app).await, before, "nothing was written");
    json
}

async fn create_user(app: &TestApp, username: &str) -> Value {
    let response = app
        .post("/api/users", &json!({ "username": username }))
        .await;
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()
}

async fn create_board(app: &TestApp, body: Value) -> Value {
    let response = app.post("/api/boards", &body).await;
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()
}

#[tokio::test]
async fn users_are_created_and_read_back() {
    let app = spawn_app().await;
    let response = app.post("/api/users", &json!({"username": "alice"})).await;
    assert_eq!(response.status, 201);
    let user = response.json();
    assert_eq!(user["username"], "alice");
    assert_eq!(
        response.header("location"),
        Some(format!("/api/users/{}", user["id"]).as_str())
    );
    let read = app.get(&format!("/api/users/{}", user["id"])).await;
    assert_eq!((read.status, read.json()), (200, user));
    let missing = app.get("/api/users/999999").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "there is no user 999999");
}

#[tokio::test]
async fn bad_user_input_is_rejected_and_nothing_is_written() {
    let app = spawn_app().await;
    create_user(&app, "alice").await;
    rejects(
        &app,
        "POST",
        "/api/users",
        br#"{"username": "alice"}"#,
        409,
        "taken",
    )
    .await;
    rejects(
        &app,
        "POST",
        "/api/users",
        br#"{"username": "  "}"#,
        400,
        "blank",
    )
    .await;
    rejects(
        &app,
        "POST",
        "/api/users",
        br#"{"username": "a\u0000b"}"#,
        400,
        "NUL",
    )
    .await;
    rejects(
        &app,
        "POST",
        "/api/users",
        br#"{"username": 7}"#,
        400,
        "invalid type",
    )
    .await;
    rejects(
        &app,
        "POST",
        "/api/users",
        br#"{"username": "#,
        400,
        "invalid JSON",
    )
    .await;
    rejects(&app, "POST", "/api/users", b"", 400, "empty").await;
    rejects(
        &app,
        "POST",
        "/api/users",
        br#"{"name": "x"}"#,
        400,
        "unknown field",
    )
    .await;
    let long = format!(r#"{{"username": "{}"}}"#, "u".repeat(65));
    rejects(
        &app,
        "POST",
        "/api/users",
        long.as_bytes(),
        400,
        "limit is 64",
    )
    .await;
    let huge = format!(r#"{{"username": "{}"}}"#, "u".repeat(70_000));
    rejects(
        &app,
        "POST",
        "/api/users",
        huge.as_bytes(),
        413,
        "over the limit",
    )
    .await;
    rejects(
        &app,
        "DELETE",
        "/api/users",
        b"",
        405,
        "this route takes POST",
    )
    .await;
    rejects(
        &app,
        "PUT",
        "/api/boards",
        b"{}",
        405,
        "takes GET, HEAD, POST",
    )
    .await;
}

#[tokio::test]
async fn boards_are_created_with_defaults_listed_newest_first_and_paged() {
    let app = spawn_app().await;
    create_user(&app, "alice").await;
    let first = create_board(&app, json!({"name": "one", "creator": "alice"})).await;
    assert_eq!(
        (
            first["rows"].clone(),
            first["cols"].clone(),
            first["dots"].clone()
        ),
        (json!(5), json!(5), json!([]))
    );
    assert_eq!(first["creator_username"], "alice");
    let second = create_board(
        &app,
        json!({"name": "two", "creator": "alice", "rows": 3, "cols": 4, "dots": [[0, 0], [3, 2]]}),
    )
    .await;
    assert_eq!(second["dots"], json!([[0, 0], [3, 2]]));
    let third = create_board(&app, json!({"name": "three", "creator": "alice"})).await;

    let page = app.get("/api/boards?limit=2").await.json();
    let names: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].clone())
        .collect();
    assert_eq!(names, [json!("three"), json!("two")]);
    let next = page["next"].as_str().expect("a next page");
    let rest = app.get(next).await.json();
    assert_eq!(rest["items"], json!([first]));
    assert_eq!(rest["next"], Value::Null);
    let one = app.get(&format!("/api/boards/{}", third["id"])).await;
    assert_eq!((one.status, one.json()), (200, third));
    assert_eq!(app.get("/api/boards/999999").await.status, 404);
}

#[tokio::test]
async fn bad_board_input_is_rejected_and_nothing_is_written() {
    let app = spawn_app().await;
    create_user(&app, "alice").await;
    let json = rejects(
        &app,
        "POST",
        "/api/boards",
        br#"{"name": "b", "creator": "nobody"}"#,
        422,
        "no user named",
    )
    .await;
    assert_eq!(json["field"], "creator");
    rejects(
        &app,
        "POST",
        "/api/boards",
        br#"{"name": "b", "creator": "alice", "rows": 0}"#,
        400,
        "rows must be from 1 to 100",
    )
    .await;
    rejects(
        &app,
        "POST",
        "/api/boards",
        br#"{"name": "b", "creator": "alice", "cols": 101}"#,
        400,
        "cols must be from 1 to 100",
    )
    .await;
    rejects(
        &app,
        "POST",
        "/api/boards",
        br#"{"name": "b", "creator": "alice", "rows": 99999999999}"#,
        400,
        "rows must be",
    )
    .await;
    rejects(
        &app,
        "POST",
        "/api/boards",
        br#"{"name": "b", "creator": "alice", "dots": [[5, 0]]}"#,
        400,
        "outside the 5x5 grid",
    )
    .await;
    rejects(
        &app,
        "POST",
        "/api/boards",
        br#"{"name": "b", "creator": "alice", "dots": [[1]]}"#,
        400,
        "invalid length",
    )
    .await;
    rejects(
        &app,
        "POST",
        "/api/boards",
        br#"{"name": "b\u0000", "creator": "alice"}"#,
        400,
        "NUL",
    )
    .await;
    rejects(
        &app,
        "POST",
        "/api/boards",
        br#"{"name": "", "creator": "alice"}"#,
        400,
        "blank",
    )
    .await;
    rejects(
        &app,
        "POST",
        "/api/boards",
        br#"{"creator": "alice"}"#,
        400,
        "missing field `name`",
    )
    .await;
    rejects(
        &app,
        "POST",
        "/api/boards",
        br#"{"name": "b", "creator": "alice", "rows": "5"}"#,
        400,
        "invalid type",
    )
    .await;
    rejects(
        &app,
        "POST",
        "/api/boards",
        br#"[1, 2]"#,
        400,
        "invalid type",
    )
    .await;
    rejects(
        &app,
        "GET",
        "/api/boards?limit=0",
        b"",
        400,
        "limit must be",
    )
    .await;
    rejects(
        &app,
        "GET",
        "/api/boards?before=x",
        b"",
        400,
        "before must be",
    )
    .await;
}

#[tokio::test]
async fn paths_are_created_on_a_board_and_read_in_drawing_order() {
    let app = spawn_app().await;
    create_user(&app, "alice").await;
    create_user(&app, "bob").await;
    let board = create_board(
        &app,
        json!({"name": "b", "creator": "alice", "rows": 3, "cols": 3}),
    )
    .await;
    let paths_url = format!("/api/boards/{}/paths", board["id"]);
    let mut created = Vec::new();
    for (user, points) in [
        ("alice", json!([[0, 0], [1, 1]])),
        ("bob", json!([[2, 2], [2, 0], [0, 2]])),
    ] {
        let response = app
            .post(&paths_url, &json!({"user": user, "points": points}))
            .await;
        assert_eq!(response.status, 201, "{}", response.text());
        let path = response.json();
        assert_eq!(
            (path["user_username"].clone(), path["points"].clone()),
            (json!(user), points)
        );
        assert_eq!(
            response.header("location"),
            Some(format!("/api/paths/{}", path["id"]).as_str())
        );
        created.push(path);
    }
    let listed = app.get(&paths_url).await.json();
    assert_eq!(listed["items"], json!(created));
    let paged = app.get(&format!("{paths_url}?limit=1")).await.json();
    assert_eq!(paged["items"], json!([created[0]]));
    let next = app.get(paged["next"].as_str().unwrap()).await.json();
    assert_eq!(next["items"], json!([created[1]]));
    let one = app.get(&format!("/api/paths/{}", created[1]["id"])).await;
    assert_eq!((one.status, one.json()), (200, created[1].clone()));
    assert_eq!(app.get("/api/paths/999999").await.status, 404);
    assert_eq!(app.get("/api/boards/999999/paths").await.status, 404);
}

#[tokio::test]
async fn bad_path_input_is_rejected_and_nothing_is_written() {
    let app = spawn_app().await;
    create_user(&app, "alice").await;
    let board = create_board(
        &app,
        json!({"name": "b", "creator": "alice", "rows": 2, "cols": 2}),
    )
    .await;
    let url = format!("/api/boards/{}/paths", board["id"]);
    rejects(
        &app,
        "POST",
        "/api/boards/999999/paths",
        br#"{"user": "alice", "points": [[0, 0]]}"#,
        404,
        "no board",
    )
    .await;
    let json = rejects(
        &app,
        "POST",
        &url,
        br#"{"user": "nobody", "points": [[0, 0]]}"#,
        422,
        "no user named",
    )
    .await;
    assert_eq!(json["field"], "user");
    rejects(
        &app,
        "POST",
        &url,
        br#"{"user": "alice", "points": [[0, 2]]}"#,
        400,
        "outside the 2x2 grid",
    )
    .await;
    rejects(
        &app,
        "POST",
        &url,
        br#"{"user": "alice", "points": [[-1, 0]]}"#,
        400,
        "outside",
    )
    .await;
    rejects(
        &app,
        "POST",
        &url,
        br#"{"user": "alice", "points": []}"#,
        400,
        "points must hold",
    )
    .await;
    rejects(
        &app,
        "POST",
        &url,
        br#"{"user": "alice", "points": [[0.5, 1]]}"#,
        400,
        "invalid type",
    )
    .await;
    rejects(
        &app,
        "POST",
        &url,
        br#"{"user": "alice"}"#,
        400,
        "missing field `points`",
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_are_json_404s_and_health_checks_answer() {
    let app = spawn_app().await;
    for path in ["/api/nothing", "/api/boards/abc", "/nowhere"] {
        let response = app.get(path).await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.json()["error"], "not found");
    }
    let health = app.get("/healthz").await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_once_it_passes_the_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let exchange = async {
        let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let head = "POST /api/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                    Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b' '; 16 * 1024];
        for _ in 0..5 {
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            if socket.write_all(&framed).await.is_err() {
                break;
            }
        }
        let _ = socket.write_all(b"0\r\n\r\n").await;
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = tokio::time::timeout(crate::support::WAIT, exchange)
        .await
        .expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("over the limit of 65536 bytes"), "{answer}");
    assert_eq!(counts(&app).await, vec![0, 0, 0, 0]);
}

#[tokio::test]
async fn a_constraint_an_operator_added_refuses_with_a_json_error_that_names_no_part_of_the_schema()
{
    let app = spawn_app().await;
    let sql = app.sql().await;
    // Rules of the operator's own, which the API cannot validate beforehand.
    sql.exec(
        "alter table app_user add constraint house_rule_no_root check (username <> 'root');
         create unique index house_rule_one_board_name on board (name);",
    )
    .await;
    let refused = rejects(
        &app,
        "POST",
        "/api/users",
        br#"{"username": "root"}"#,
        400,
        "breaks a rule of the table",
    )
    .await;
    assert!(!refused.to_string().contains("house_rule"), "{refused}");
    create_user(&app, "alice").await;
    let board = json!({"name": "plan", "creator": "alice"});
    create_board(&app, board.clone()).await;
    let body = serde_json::to_vec(&board).unwrap();
    let refused = rejects(&app, "POST", "/api/boards", &body, 409, "exists already").await;
    assert!(!refused.to_string().contains("house_rule"), "{refused}");
}

#[tokio::test]
async fn while_the_schema_is_being_migrated_the_api_answers_503_not_500() {
    let url = fresh_database(pg::shared()).await;
    let sql = connect(&url).await;
    // The advisory lock the gateway's migrations take (db::MIGRATION_LOCK): held here, they wait.
    sql.exec("select pg_advisory_lock(7305011400)").await;
    let app = spawn_app_unready(&url, &[]).await;
    let waiting = "select count(*) from pg_stat_activity \
                   where wait_event_type = 'Lock' and query like '%pg_advisory_lock%'";
    let deadline = tokio::time::Instant::now() + crate::support::WAIT;
    while sql.one(waiting, &[]).await.get::<_, i64>(0) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the migrations never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let early = app.post("/api/users", &json!({"username": "early"})).await;
    assert_eq!(early.status, 503, "{}", early.text());
    assert_eq!(
        early.json()["error"],
        "the database is unavailable, try again shortly"
    );
    assert_eq!(app.get("/api/boards").await.status, 503);
    sql.exec("select pg_advisory_unlock(7305011400)").await;
    app.wait_ready().await;
    create_user(&app, "early").await;
}

#[tokio::test]
async fn json_replies_end_with_a_newline_so_a_shell_prompt_starts_on_its_own_line() {
    let app = spawn_app().await;
    let created = app.post("/api/users", &json!({"username": "alice"})).await;
    let read = app
        .get(&format!("/api/users/{}", created.json()["id"]))
        .await;
    let missing = app.get("/api/users/999999").await;
    let health = app.get("/healthz").await;
    for (what, response) in [
        ("201", created),
        ("200", read),
        ("404", missing),
        ("healthz", health),
    ] {
        assert_eq!(response.header("content-type"), Some("application/json"));
        let text = response.text();
        assert!(text.ends_with("}\n"), "{what}: {text:?}");
        assert_eq!(text.matches('\n').count(), 1, "{what}: {text:?}");
    }
}
