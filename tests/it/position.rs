//! The position of a read: `pgsse.position()` and the REST API's `Pgsse-Position` header. A
//! client that reads, then opens the stream with `?lastEventId=<position>`, gets exactly the rows
//! its read did not see, while other writers commit around it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_postgres::error::SqlState;

use crate::support::checker::Recorder;
use crate::support::http::request;
use crate::support::{
    connect, insert_board, newest_event, pg, spawn_app, spawn_app_on, spawn_app_with, Sql, TestApp,
    WAIT,
};

/// How many times a read and its position are taken while writers commit.
const ROUNDS: usize = 30;

/// Writers that insert boards named `{prefix}{i}` one transaction at a time, each until it has
/// written `most` or is stopped.
struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Writers {
    fn start(url: &str, writers: usize, most: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..writers)
            .map(|w| tokio::spawn(write(url.to_owned(), format!("w{w}-"), most, stop.clone())))
            .collect();
        Writers { stop, tasks }
    }

    /// Stops the writers and waits until each has committed its last board.
    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            timeout(WAIT, task)
                .await
                .expect("a writer stops in time")
                .expect("a writer ends cleanly");
        }
    }
}

async fn write(url: String, prefix: String, most: usize, stop: Arc<AtomicBool>) {
    let sql = connect(&url).await;
    for i in 0..most {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        insert_board(&sql, "writer", &format!("{prefix}{i}")).await;
    }
}

/// Waits until the event log has an event, so that the writers are under way.
async fn wait_for_events(sql: &Sql) {
    let some = async {
        while newest_event(sql).await == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(WAIT, some).await.expect("the writers write");
}

/// Reads a stream of `newBoard` events from `position` through the newest event, and returns
/// the boards' data in the order received.
async fn boards_after(app: &TestApp, position: i64, through: i64) -> Vec<Value> {
    let path = "/sse/notifications/?events=newBoard";
    let mut recorder = Recorder::connect(app.addr, path, Some(position)).await;
    recorder.read_through(through).await;
    assert!(
        recorder.received.iter().all(|e| e.event == "newBoard"),
        "from {position}: {:?}",
        recorder.received
    );
    recorder.events().map(|e| e.json()).collect()
}

/// Every board's name, by id.
async fn every_board(sql: &Sql) -> BTreeMap<i64, String> {
    let rows = sql.query("select id, name from board", &[]).await;
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// The boards a stream delivered, by id, with how many times each came.
fn delivered(events: &[Value]) -> BTreeMap<i64, usize> {
    let mut boards = BTreeMap::new();
    for event in events {
        let id = event["board_id"].as_i64().expect("a board id");
        *boards.entry(id).or_default() += 1;
    }
    boards
}

/// What is wrong with a read and the stream from its position, if anything: the boards neither
/// gave, those both gave or the stream gave twice, and what the stream gave that no one wrote.
fn gaps(
    all: &BTreeMap<i64, String>,
    read: &BTreeSet<i64>,
    streamed: &BTreeMap<i64, usize>,
) -> String {
    let missing: Vec<&i64> = all
        .keys()
        .filter(|id| !read.contains(id) && !streamed.contains_key(id))
        .collect();
    let twice: Vec<&i64> = streamed
        .iter()
        .filter(|(id, n)| **n > 1 || read.contains(id))
        .map(|(id, _)| id)
        .collect();
    let unknown: Vec<&i64> = streamed.keys().filter(|id| !all.contains_key(id)).collect();
    match (missing.is_empty(), twice.is_empty(), unknown.is_empty()) {
        (true, true, true) => String::new(),
        _ => format!("missing {missing:?}, twice {twice:?}, unknown {unknown:?}"),
    }
}

#[tokio::test]
async fn a_stream_from_the_position_of_a_read_delivers_exactly_the_rows_the_read_did_not_see() {
    let app = spawn_app().await;
    let reader = app.sql().await;
    let writers = Writers::start(&app.database_url, 4, 10_000);
    wait_for_events(&reader).await;
    let mut reads = Vec::new();
    for _ in 0..ROUNDS {
        reader
            .exec("begin isolation level repeatable read read only")
            .await;
        let seen = every_board(&reader).await;
        let position: i64 = reader.one("select pgsse.position()", &[]).await.get(0);
        reader.exec("commit").await;
        // Opened at once, while the gateway may not have heard of the position yet.
        let path = "/sse/notifications/?events=newBoard";
        let stream = Recorder::connect(app.addr, path, Some(position)).await;
        reads.push((seen, position, stream));
    }
    // Every read is followed by commits of the writers' before they stop.
    let last = reads.last().map_or(0, |(_, position, _)| *position);
    let more = async {
        while newest_event(&reader).await <= last {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(WAIT, more).await.expect("the writers write on");
    writers.stop().await;

    let all = every_board(&reader).await;
    let through = newest_event(&reader).await;
    let partial = reads
        .iter()
        .filter(|(seen, ..)| !seen.is_empty() && seen.len() < all.len())
        .count();
    assert_eq!(
        partial, ROUNDS,
        "every read saw some boards, and others came after it"
    );
    for (seen, position, mut stream) in reads {
        stream.read_through(through).await;
        let events: Vec<Value> = stream.events().map(|e| e.json()).collect();
        let read = seen.into_keys().collect();
        let wrong = gaps(&all, &read, &delivered(&events));
        assert_eq!(
            wrong,
            "",
            "the stream from {position} after a read of {} boards",
            read.len()
        );
    }
}

#[tokio::test]
async fn each_get_of_the_api_gives_the_position_from_which_the_stream_completes_its_answer() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    // At most 90 boards: every list below is one page of at most 100.
    let writers = Writers::start(&app.database_url, 3, 30);
    wait_for_events(&sql).await;
    let mut answers = Vec::new();
    for _ in 0..ROUNDS {
        let answer = app.get("/api/boards?limit=100").await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let position: i64 = answer
            .header("pgsse-position")
            .expect("a Pgsse-Position header")
            .parse()
            .expect("a position is a number");
        let body = answer.json();
        assert_eq!(body["next"], Value::Null, "one page holds every board");
        let listed: Vec<i64> = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|b| b["id"].as_i64().expect("an id"))
            .collect();
        answers.push((listed, position));
    }
    writers.stop().await;

    let all = every_board(&sql).await;
    let through = newest_event(&sql).await;
    for (listed, position) in answers {
        let streamed = delivered(&boards_after(&app, position, through).await);
        let read = listed.iter().copied().collect();
        let wrong = gaps(&all, &read, &streamed);
        assert_eq!(
            wrong,
            "",
            "the list of {} boards and the stream from {position}",
            listed.len()
        );
    }
}

#[tokio::test]
async fn every_get_that_reads_the_database_has_the_position_even_when_nothing_is_found() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    let board = insert_board(&sql, "ann", "b").await;
    sql.exec("insert into path(board_id, user_id) select id, creator_id from board")
        .await;
    let user: i64 = sql.one("select id from app_user", &[]).await.get(0);
    let path: i64 = sql.one("select id from path", &[]).await.get(0);
    let newest = newest_event(&sql).await.to_string();
    let found = [
        format!("/api/users/{user}"),
        "/api/boards".into(),
        format!("/api/boards/{board}"),
        format!("/api/boards/{board}/paths"),
        format!("/api/paths/{path}"),
    ];
    for route in found {
        let answer = app.get(&route).await;
        assert_eq!(answer.status, 200, "{route}: {}", answer.text());
        assert_eq!(
            answer.header("pgsse-position"),
            Some(newest.as_str()),
            "{route}"
        );
    }
    let missing = [
        "/api/users/99",
        "/api/boards/99",
        "/api/boards/99/paths",
        "/api/paths/99",
    ];
    for route in missing {
        let answer = app.get(route).await;
        assert_eq!(answer.status, 404, "{route}: {}", answer.text());
        assert_eq!(
            answer.header("pgsse-position"),
            Some(newest.as_str()),
            "{route}"
        );
    }
}

#[tokio::test]
async fn the_position_header_is_described_and_pages_of_other_origins_may_read_it() {
    let page = "https://app.example.com";
    let app = spawn_app_with(&[("CORS_ORIGINS", page)]).await;
    let got = request(app.addr, "GET", "/api/boards", &[("Origin", page)], None).await;
    assert_eq!(got.status, 200);
    assert!(got.header("pgsse-position").is_some());
    let exposed = got
        .header("access-control-expose-headers")
        .expect("exposed headers")
        .to_ascii_lowercase();
    assert!(exposed.contains("pgsse-position"), "{exposed}");

    let doc = app.get("/api/openapi.json").await.json();
    let routes = [
        ("/api/users/{id}", "200"),
        ("/api/users/{id}", "404"),
        ("/api/boards", "200"),
        ("/api/boards/{id}", "200"),
        ("/api/boards/{id}", "404"),
        ("/api/boards/{id}/paths", "200"),
        ("/api/boards/{id}/paths", "404"),
        ("/api/paths/{id}", "200"),
        ("/api/paths/{id}", "404"),
        ("/api/events", "200"),
    ];
    for (route, status) in routes {
        let header = &doc["paths"][route]["get"]["responses"][status]["headers"]["Pgsse-Position"];
        assert_eq!(
            header["schema"]["type"], "integer",
            "{route} {status}: {header}"
        );
        let description = header["description"].as_str().unwrap_or_default();
        assert!(
            description.contains("lastEventId"),
            "{route} {status}: {header}"
        );
    }
}

#[tokio::test]
async fn an_application_role_may_take_the_position_and_still_cannot_read_the_event_log() {
    let cluster = pg::shared();
    let admin = connect(&cluster.url("postgres")).await;
    admin
        .exec("create role position_gateway login; create role position_app login")
        .await;
    admin
        .exec("create database position_roles owner position_gateway")
        .await;
    let url = cluster.url("position_roles");
    let as_role =
        |role: &str| url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    let app = spawn_app_on(&as_role("position_gateway"), &[]).await;
    let owner = connect(&as_role("position_gateway")).await;
    let grants = include_str!("../../sql/grant_application_role.sql");
    owner
        .exec(&grants.replace("pgsse_app", "position_app"))
        .await;
    insert_board(&owner, "ann", "b").await;

    let application = connect(&as_role("position_app")).await;
    application
        .exec("begin isolation level repeatable read read only")
        .await;
    let names: Vec<String> = application
        .query("select name from board", &[])
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    let position: i64 = application.one("select pgsse.position()", &[]).await.get(0);
    application.exec("commit").await;
    assert_eq!(names, ["b"]);
    assert_eq!(position, newest_event(&owner).await);

    let err = application
        .try_exec("select * from pgsse.event")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{err:?}"
    );
    drop(app);
}

#[tokio::test]
async fn a_position_asked_for_in_read_committed_is_refused_with_the_pattern_as_a_hint() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    for statement in [
        "select pgsse.position()",
        "begin; select pgsse.position()",
        "begin isolation level read uncommitted; select pgsse.position()",
    ] {
        let err = sql.try_exec(statement).await.unwrap_err();
        sql.exec("rollback").await;
        let db = err.as_db_error().expect("a database error");
        assert_eq!(
            db.code(),
            &SqlState::INVALID_TRANSACTION_STATE,
            "{statement}"
        );
        assert!(
            db.message().contains("repeatable read"),
            "{statement}: {db:?}"
        );
        let hint = db.hint().unwrap_or_default();
        assert!(
            hint.contains("begin isolation level repeatable read"),
            "{statement}: {db:?}"
        );
    }
    sql.exec("begin isolation level serializable; select pgsse.position(); commit")
        .await;
}

#[tokio::test]
async fn after_every_event_was_pruned_the_position_is_the_horizon_and_the_stream_misses_nothing() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    assert_eq!(position_of(&sql).await, 0, "a log that never had an event");
    for name in ["a", "b", "c"] {
        insert_board(&sql, "ann", name).await;
    }
    sql.exec("select pgsse.prune('0 seconds', 0)").await;
    let horizon: i64 = sql
        .one("select pruned_through from pgsse.horizon", &[])
        .await
        .get(0);
    assert_eq!(
        sql.one("select count(*) from pgsse.event", &[])
            .await
            .get::<_, i64>(0),
        0
    );
    let position = position_of(&sql).await;
    assert_eq!(position, horizon);

    let mut stream = Recorder::connect(app.addr, "/sse/notifications/", Some(position)).await;
    let id = insert_board(&sql, "ann", "d").await;
    stream.read_through(newest_event(&sql).await).await;
    let kinds: Vec<(String, Value)> = stream
        .received
        .iter()
        .map(|e| (e.event.clone(), e.json()["board_id"].clone()))
        .collect();
    assert_eq!(kinds, [("newBoard".to_owned(), Value::from(id))]);
}

/// `pgsse.position()` in a transaction of its own.
async fn position_of(sql: &Sql) -> i64 {
    sql.exec("begin isolation level repeatable read read only")
        .await;
    let position = sql.one("select pgsse.position()", &[]).await.get(0);
    sql.exec("commit").await;
    position
}
