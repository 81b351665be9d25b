//! Retention: prunes old events from `pgsse.event` on a timer.
//!
//! Several gateways may prune the same database; `pgsse.prune` is safe to run concurrently. A
//! failed run (the database is away) is logged and retried at the next tick.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;

use crate::config::Config;
use crate::db;
use crate::shutdown::Shutdown;
use crate::store::events;

pub struct Retention {
    pub max_age: Duration,
    pub max_events: i64,
    pub interval: Duration,
}

impl Retention {
    /// RETENTION_SECS, RETENTION_MAX_EVENTS and PRUNE_INTERVAL_SECS.
    pub fn from_config(config: &Config) -> Retention {
        Retention {
            max_age: config.retention_age,
            max_events: config.retention_events,
            interval: config.prune_interval,
        }
    }
}

/// Prunes every `interval` until shutdown, starting at once.
pub async fn run(pool: Pool, retention: Arc<Retention>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(retention.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => prune(&pool, &retention).await,
            () = shutdown.fired() => return,
        }
    }
}

async fn prune(pool: &Pool, retention: &Retention) {
    let result = db::query_within(pool, db::POOL_TIMEOUT, async |client| {
        events::prune(client, retention.max_age, retention.max_events).await
    })
    .await;
    match result {
        Ok(0) => {}
        Ok(deleted) => log::info!(
            "retention: pruned {deleted} events (keeping {} s and at most {} events)",
            retention.max_age.as_secs(),
            retention.max_events
        ),
        Err(err) => log::warn!("retention: cannot prune, will retry: {err}"),
    }
}
