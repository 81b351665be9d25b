//! The test harness: a gateway started in-process on port 0 against a fresh database, a plain
//! SQL connection to write rows with, and clients to observe it.

pub mod browser;
pub mod checker;
pub mod fleet;
pub mod http;
pub mod jwks;
pub mod nginx;
pub mod pg;
pub mod process;
pub mod proxy;
pub mod sse;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pgsse::{App, Config};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

use self::http::Response;
pub use self::http::WAIT;
use self::sse::SseClient;

/// A running gateway and its database.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The URL of this test's own database.
    pub database_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Starts a gateway on a fresh database in the shared cluster.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts a gateway on a fresh database, with extra settings (`("KEEPALIVE_SECS", "1")`).
pub async fn spawn_app_with(settings: &[(&str, &str)]) -> TestApp {
    let url = fresh_database(pg::shared()).await;
    spawn_app_on(&url, settings).await
}

/// Starts a gateway on an existing database, and waits until it is ready.
pub async fn spawn_app_on(database_url: &str, settings: &[(&str, &str)]) -> TestApp {
    let app = spawn_app_unready(database_url, settings).await;
    app.wait_ready().await;
    app
}

/// Starts a gateway on a fresh database that it reaches through a [`proxy::Proxy`] (which the
/// test can freeze), and returns it with the proxy; [`TestApp::database_url`] is the direct URL,
/// for the test's own SQL.
pub async fn spawn_app_through_proxy() -> (TestApp, proxy::Proxy) {
    let cluster = pg::shared();
    let url = fresh_database(cluster).await;
    let proxy = proxy::Proxy::start(cluster.port).await;
    let through = url.replace(&format!(":{}/", cluster.port), &format!(":{}/", proxy.port));
    let mut app = spawn_app_on(&through, &[]).await;
    app.database_url = url;
    (app, proxy)
}

/// Starts a gateway without waiting for it to be ready (its database may not be there yet).
pub async fn spawn_app_unready(database_url: &str, settings: &[(&str, &str)]) -> TestApp {
    init_logging();
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", database_url),
        ("BIND_ADDR", "127.0.0.1:0"),
        ("DB_POOL_SIZE", "4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_lookup(|name| vars.get(name).cloned()).expect("test config is valid");
    let app = timeout(WAIT, App::build(config))
        .await
        .expect("the gateway builds in time")
        .expect("the gateway builds");
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        database_url: database_url.to_owned(),
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    /// Waits until `/readyz` says the listener is listening.
    pub async fn wait_ready(&self) {
        let ready = async {
            while self.get("/readyz").await.status != 200 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        timeout(WAIT, ready)
            .await
            .expect("the gateway gets ready in time");
    }

    /// A plain SQL connection to the test's database, as any SQL client would have.
    pub async fn sql(&self) -> Sql {
        connect(&self.database_url).await
    }

    pub async fn get(&self, path: &str) -> Response {
        http::get(self.addr, path).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        http::post_json(self.addr, path, body).await
    }

    /// Opens `/sse/notifications/` with extra headers; the client is subscribed on return.
    pub async fn sse(&self, path: &str, headers: &[(&str, &str)]) -> SseClient {
        SseClient::connect(self.addr, path, headers).await
    }

    /// Opens `/sse/notifications/`; the client is subscribed on return.
    pub async fn stream(&self) -> SseClient {
        let client = self.sse("/sse/notifications/", &[]).await;
        assert_eq!(client.status, 200);
        client
    }

    /// Stops the gateway as SIGTERM would, and waits until it has fully stopped.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            timeout(WAIT, task)
                .await
                .expect("the gateway stops in time")
                .expect("the gateway task ends cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A plain SQL connection whose every query is bounded by [`WAIT`].
pub struct Sql(Client);

impl Sql {
    /// Runs statements (several may be separated by `;`).
    pub async fn exec(&self, sql: &str) {
        self.try_exec(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    pub async fn try_exec(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        bounded(sql, self.0.batch_execute(sql)).await
    }

    pub async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
        bounded(sql, self.0.query(sql, params))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    pub async fn try_query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        bounded(sql, self.0.query(sql, params)).await
    }

    pub async fn one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Row {
        bounded(sql, self.0.query_one(sql, params))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }
}

async fn bounded<T>(sql: &str, query: impl std::future::Future<Output = T>) -> T {
    timeout(WAIT, query)
        .await
        .unwrap_or_else(|_| panic!("no answer to {sql:?} within {WAIT:?}"))
}

/// Connects to `url`, driving the connection in the background.
/// The URL of `url`'s database for another role.
pub fn as_role(url: &str, role: &str) -> String {
    url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1)
}

pub async fn connect(url: &str) -> Sql {
    let (client, connection) = timeout(WAIT, tokio_postgres::connect(url, NoTls))
        .await
        .expect("connect in time")
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(connection);
    Sql(client)
}

/// Connects to `url`, or `None` if the server is not reachable right now.
pub async fn try_connect(url: &str) -> Option<Sql> {
    let (client, connection) = timeout(WAIT, tokio_postgres::connect(url, NoTls))
        .await
        .ok()?
        .ok()?;
    tokio::spawn(connection);
    Some(Sql(client))
}

/// Inserts `count` boards named `{prefix}{i}`, one transaction each, `pause` apart, the way a
/// busy application would. Each insert is retried until it succeeds (the database may be
/// restarting), for at most [`WAIT`] per insert. Returns when all are in.
pub fn spawn_writer(url: &str, prefix: &str, count: usize, pause: Duration) -> JoinHandle<()> {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    tokio::spawn(async move {
        let mut sql = None;
        for i in 0..count {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                if sql.is_none() {
                    sql = try_connect(&url).await;
                }
                if let Some(conn) = &sql {
                    let insert = format!(
                        "insert into app_user(username) values ('writer') on conflict do nothing; \
                         insert into board(name, creator_id) \
                         select '{prefix}{i}', id from app_user where username = 'writer'"
                    );
                    match conn.try_exec(&insert).await {
                        Ok(()) => break,
                        Err(_) => sql = None,
                    }
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "insert {prefix}{i} kept failing"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    })
}

/// The newest event id in the table.
pub async fn newest_event(sql: &Sql) -> i64 {
    sql.one("select coalesce(max(id), 0) from pgsse.event", &[])
        .await
        .get(0)
}

/// A gauge or counter from `/metrics`.
pub async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("pgsse_{name} ")))
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
        .parse()
        .expect("a number")
}

/// Creates an empty database in `cluster` and returns its URL.
pub async fn fresh_database(cluster: &pg::Cluster) -> String {
    static DATABASES: AtomicUsize = AtomicUsize::new(0);
    let name = format!("test_{}", DATABASES.fetch_add(1, Ordering::Relaxed));
    let admin = connect(&cluster.url("postgres")).await;
    admin.exec(&format!("create database {name}")).await;
    cluster.url(&name)
}

/// Inserts a user and a board over SQL; returns the board's id.
pub async fn insert_board(sql: &Sql, username: &str, name: &str) -> i64 {
    sql.query(
        "insert into app_user(username) values ($1) on conflict (username) do nothing",
        &[&username],
    )
    .await;
    let row = sql
        .one(
            "insert into board(name, creator_id) select $2, id from app_user where username = $1 returning id",
            &[&username, &name],
        )
        .await;
    row.get(0)
}

fn init_logging() {
    let _ = pretty_env_logger::formatted_timed_builder()
        .is_test(true)
        .parse_filters(&std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
}

/// Runs the shell `cleanup` once this test process is gone, even if it is killed: `setsid -f`
/// starts the watchdog in a session of its own (so killing the test's process group does not
/// kill it) and returns at once.
pub fn after_exit(cleanup: &str) {
    let script = format!(
        "while kill -0 {} 2>/dev/null; do sleep 1; done; {cleanup}",
        std::process::id()
    );
    let status = std::process::Command::new("setsid")
        .args(["-f", "sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("start a watchdog");
    assert!(status.success(), "the watchdog started");
}

/// Bytes the kernel holds unsent or unacknowledged on the gateway's side of the TCP connection
/// between `gateway` and `client` (`tx_queue` in /proc/net/tcp), if the connection is there.
pub fn gateway_send_queue(gateway: SocketAddr, client: SocketAddr) -> Option<u64> {
    let hex = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => unreachable!("the tests use IPv4 loopback"),
    };
    let (local, remote) = (hex(gateway), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&local.as_str()) || fields.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (tx, _rx) = fields.get(4)?.split_once(':')?;
        u64::from_str_radix(tx, 16).ok()
    })
}
