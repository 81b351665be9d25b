//! The ingest case: how fast the gateway takes a burst of events off its LISTEN connection. One
//! transaction records `count` events through `pgsse.emit`, as the triggers do, so they are real
//! events of the log: in the table, notified at commit with the payload the triggers send. The
//! gateway's rate is measured from the commit. A bare LISTEN client receives the same
//! notifications, for comparison.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bench::floor::Floor;
use crate::bench::tally::now_us;
use crate::bench::writer;
use crate::gateway::Gateway;

const EMIT: &str = "\
select count(pgsse.emit('newBoard', jsonb_build_object(
           'board_id', i, 'board_name', 'ingest-' || i, 'creator_username', 'bench')))
  from generate_series(1, $1::bigint) as i";

#[derive(Debug, Serialize)]
pub struct IngestResult {
    pub notifications: i64,
    /// Events the gateway published from them (all of them, or something was lost).
    pub published: i64,
    /// Seconds from the commit until the gateway had published the last one.
    pub gateway_seconds: f64,
    pub gateway_per_second: f64,
    pub gateway_cpu_seconds_per_million: Option<f64>,
    /// Seconds from the commit until the bare LISTEN client had the last one.
    pub floor_seconds: f64,
    pub floor_per_second: f64,
    /// Seconds PostgreSQL took to record and queue them (the statement and its commit).
    pub queue_seconds: f64,
}

pub async fn run(gateway: &mut Gateway, url: &str, count: i64) -> Result<IngestResult, String> {
    let db = |e: tokio_postgres::Error| format!("ingest: {e}");
    let sql = writer::connect(url).await.map_err(db)?;
    let before = gateway.metric("events_received_total").await? as i64;
    let floor = Floor::listen(url, 0, 0).await.map_err(db)?;
    let cpu_start = gateway.cpu_seconds();
    let started = Instant::now();
    sql.execute(EMIT, &[&count]).await.map_err(db)?;
    let committed = (Instant::now(), now_us());
    let queue_seconds = started.elapsed().as_secs_f64();
    let published = wait_published(gateway, before + count).await? - before;
    let gateway_seconds = committed.0.elapsed().as_secs_f64();
    let cpu = gateway.cpu_seconds().zip(cpu_start).map(|(b, a)| b - a);
    // The bare client may still be reading; give it the same chance.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (floor.notifications() as i64) < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let floor_seconds = floor.last_us().saturating_sub(committed.1) as f64 / 1e6;
    let floor_received = floor.notifications() as f64;
    floor.finish(0).await;
    Ok(IngestResult {
        notifications: count,
        published,
        gateway_seconds,
        gateway_per_second: published as f64 / gateway_seconds,
        gateway_cpu_seconds_per_million: cpu.map(|s| s * 1e6 / count as f64),
        floor_seconds,
        floor_per_second: floor_received / floor_seconds.max(1e-9),
        queue_seconds,
    })
}

/// Polls `/metrics` until the gateway has published `target` events in all, or has published
/// nothing new for ten seconds; returns the count it reached.
async fn wait_published(gateway: &mut Gateway, target: i64) -> Result<i64, String> {
    let (mut last, mut last_change) = (0, Instant::now());
    loop {
        let now = gateway.metric("events_received_total").await? as i64;
        if now >= target {
            return Ok(now);
        }
        if now != last {
            (last, last_change) = (now, Instant::now());
        } else if last_change.elapsed() > Duration::from_secs(10) {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
