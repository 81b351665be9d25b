//! The writers case: what events cost the application's writers. Connections insert one row per
//! transaction (autocommit), as fast as they can, for a fixed time into each of four tables, with
//! `synchronous_commit` on and then off:
//!
//! - `bench_plain`: no trigger, the floor;
//! - `bench_notify`: an `after insert … for each row` trigger that calls a bare
//!   `pg_notify('bench', id)`, the hand-rolled way, with a connection listening on `bench`;
//! - `bench_watched`: the same columns, watched by `pgsse.watch` (every column, inserts only);
//! - `board`: the built-in `newBoard` events.
//!
//! The gateway runs and listens throughout, so every event is read as it would be in use. Each
//! run starts after a checkpoint on an emptied table (`board` is not emptied: it may hold the
//! other cases' rows) and counts the commits that end within its measured seconds, after a
//! warm-up that plans the statements and fills the caches.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::future::try_join_all;
use serde::Serialize;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};

use crate::bench::writer;

/// Before each run's measured seconds.
const WARM_UP: Duration = Duration::from_secs(1);
/// The hand-rolled trigger's channel.
const NOTIFY_CHANNEL: &str = "bench";

const SETUP: &str = "
drop table if exists bench_plain, bench_notify, bench_watched;
create table bench_plain (
    id bigint generated always as identity primary key,
    name text not null,
    n int not null);
create table bench_notify (like bench_plain including all);
create table bench_watched (like bench_plain including all);
create or replace function bench_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('bench', new.id::text);
    return null;
end;
$$;
create trigger bench_notify after insert on bench_notify
    for each row execute function bench_notify();
select pgsse.watch('bench_watched', 'bench.row');
insert into app_user(username) values ('bench') on conflict (username) do nothing;
";

/// The tables, in the order they run and the report shows them.
const TABLES: [Table; 4] = [Table::Plain, Table::Notify, Table::Watched, Table::Board];

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// (a) no trigger.
    Plain,
    /// (b) a trigger that calls `pg_notify`.
    Notify,
    /// (c) watched by `pgsse.watch`.
    Watched,
    /// (d) `board`.
    Board,
}

impl Table {
    pub fn label(self) -> &'static str {
        match self {
            Table::Plain => "(a) no trigger",
            Table::Notify => "(b) pg_notify trigger",
            Table::Watched => "(c) pgsse.watch",
            Table::Board => "(d) board",
        }
    }

    /// The INSERT, of a text and a bigint: the row's number, or for `board` its creator.
    fn insert(self) -> &'static str {
        match self {
            Table::Plain => "insert into bench_plain (name, n) values ($1, $2::bigint)",
            Table::Notify => "insert into bench_notify (name, n) values ($1, $2::bigint)",
            Table::Watched => "insert into bench_watched (name, n) values ($1, $2::bigint)",
            Table::Board => "insert into board (name, creator_id) values ($1, $2)",
        }
    }

    fn empty(self) -> Option<&'static str> {
        match self {
            Table::Plain => Some("truncate bench_plain"),
            Table::Notify => Some("truncate bench_notify"),
            Table::Watched => Some("truncate bench_watched"),
            Table::Board => None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct WritersResult {
    pub connections: usize,
    pub seconds: f64,
    pub warm_up_seconds: f64,
    pub runs: Vec<WritersRun>,
}

#[derive(Debug, Serialize)]
pub struct WritersRun {
    pub table: Table,
    pub synchronous_commit: bool,
    /// Commits that ended within the measured seconds.
    pub commits: u64,
    pub commits_per_second: f64,
}

impl WritersResult {
    pub fn rate(&self, table: Table, synchronous_commit: bool) -> Option<f64> {
        self.runs
            .iter()
            .find(|r| r.table == table && r.synchronous_commit == synchronous_commit)
            .map(|r| r.commits_per_second)
    }

    /// The watched table's commits/s as a percentage of the `pg_notify` trigger's.
    pub fn watched_percent(&self, synchronous_commit: bool) -> Option<f64> {
        let watched = self.rate(Table::Watched, synchronous_commit)?;
        let notify = self.rate(Table::Notify, synchronous_commit)?;
        (notify > 0.0).then(|| watched * 100.0 / notify)
    }

    /// Every run committed something.
    pub fn clean(&self) -> bool {
        self.runs.len() == TABLES.len() * 2 && self.runs.iter().all(|r| r.commits > 0)
    }
}

pub async fn run(url: &str, connections: usize, seconds: f64) -> Result<WritersResult, String> {
    let db = |e: tokio_postgres::Error| format!("writers: {e}");
    let admin = writer::connect(url).await.map_err(db)?;
    admin.batch_execute(SETUP).await.map_err(db)?;
    let _listener = listen(url, NOTIFY_CHANNEL).await.map_err(db)?;
    let creator: i64 = admin
        .query_one("select id from app_user where username = 'bench'", &[])
        .await
        .map_err(db)?
        .get(0);
    let measured = Duration::from_secs_f64(seconds);
    let mut runs = Vec::new();
    for synchronous_commit in [true, false] {
        for table in TABLES {
            if let Some(empty) = table.empty() {
                admin.batch_execute(empty).await.map_err(db)?;
            }
            // Each run starts with a checkpoint behind it, so that none pays for another's
            // full-page writes; only a superuser (or pg_checkpoint) may ask for one.
            let _ = admin.batch_execute("checkpoint").await;
            let run = Run {
                table,
                synchronous_commit,
                creator,
                measured,
            };
            let commits = insert(url, connections, &run)
                .await
                .map_err(|e| format!("writers, {}: {e}", table.label()))?;
            runs.push(WritersRun {
                table,
                synchronous_commit,
                commits,
                commits_per_second: commits as f64 / seconds,
            });
        }
    }
    admin
        .batch_execute("select pgsse.unwatch('bench_watched')")
        .await
        .map_err(db)?;
    Ok(WritersResult {
        connections,
        seconds,
        warm_up_seconds: WARM_UP.as_secs_f64(),
        runs,
    })
}

/// One run's table and setting.
struct Run {
    table: Table,
    synchronous_commit: bool,
    /// The `bench` user, `board`'s creator.
    creator: i64,
    measured: Duration,
}

/// Inserts from `connections` connections, one row per transaction, for the warm-up and then
/// the measured time; returns the commits that ended within the measured time.
async fn insert(url: &str, connections: usize, run: &Run) -> Result<u64, tokio_postgres::Error> {
    let mut opened = Vec::new();
    for _ in 0..connections.max(1) {
        let client = writer::connect(url).await?;
        let setting = if run.synchronous_commit { "on" } else { "off" };
        client
            .batch_execute(&format!("set synchronous_commit = {setting}"))
            .await?;
        let insert = client.prepare(run.table.insert()).await?;
        opened.push((client, insert));
    }
    let start = Instant::now() + WARM_UP;
    let end = start + run.measured;
    let commits = AtomicU64::new(0);
    let each = opened.iter().enumerate().map(|(i, (client, insert))| {
        let commits = &commits;
        async move {
            let mut n = 0i64;
            while Instant::now() < end {
                let name = format!("writer {i} row {n}");
                let second = if run.table == Table::Board {
                    run.creator
                } else {
                    n
                };
                client.execute(insert, &[&name, &second]).await?;
                let now = Instant::now();
                if now >= start && now < end {
                    commits.fetch_add(1, Relaxed);
                }
                n += 1;
            }
            Ok::<(), tokio_postgres::Error>(())
        }
    });
    try_join_all(each).await?;
    Ok(commits.load(Relaxed))
}

/// A connection that `LISTEN`s on `channel` and reads every notification, as the hand-rolled
/// trigger's application would; it stops when dropped.
async fn listen(url: &str, channel: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            if let Err(err) = message {
                log::warn!("bench: the LISTEN connection on {NOTIFY_CHANNEL} failed: {err}");
                break;
            }
        }
    });
    client.batch_execute(&format!("listen {channel}")).await?;
    Ok(client)
}
