//! Connections to PostgreSQL: the pool for queries, and migrations at startup.
//!
//! The listener's dedicated connection is made in `listener`, never here: pooled connections are
//! driven in the background, which throws notifications away.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::config::Config;
use crate::hub::Start;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long background work (replays, pruning) waits on the database before giving up.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Serializes migrations between gateway instances starting together (refinery takes no lock).
const MIGRATION_LOCK: i64 = 7_305_011_400;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("database query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] refinery::Error),
    #[error("cannot get a pooled connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// The connection pool used by the REST API and by replays.
pub fn pool(config: &Config) -> Pool {
    let manager = Manager::from_config(
        with_timeouts(config.database.clone()),
        NoTls,
        // Verified: a pooled connection answers a round trip before reuse, within the recycle
        // timeout, so one left half-open by a dead network path is replaced, not handed out.
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(QUERY_TIMEOUT))
        .create_timeout(Some(QUERY_TIMEOUT))
        .recycle_timeout(Some(Duration::from_secs(2)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .expect("a pool with a runtime and timeouts always builds")
}

/// Adds what every connection of ours wants: a connect timeout, TCP keepalives that notice a dead
/// peer within about half a minute, and a name to spot it in `pg_stat_activity`.
pub fn with_timeouts(mut pg: tokio_postgres::Config) -> tokio_postgres::Config {
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_secs(10));
    }
    pg.keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3);
    if pg.get_application_name().is_none() {
        pg.application_name("pgsse");
    }
    pg
}

/// The listener's connection settings: the pool's, named so that it can be told apart in
/// `pg_stat_activity` (operators look for it, and tests terminate it).
pub fn for_listener(pg: tokio_postgres::Config) -> tokio_postgres::Config {
    let mut pg = with_timeouts(pg);
    let name = format!("{} listener", pg.get_application_name().unwrap_or("pgsse"));
    pg.application_name(&name);
    pg
}

/// Applies pending migrations, holding an advisory lock so that two instances never race.
pub async fn migrate(config: &Config) -> Result<(), DbError> {
    let (mut client, connection) = with_timeouts(config.database.clone())
        .connect(NoTls)
        .await
        .map_err(DbError::Connect)?;
    let driver = tokio::spawn(connection);
    client
        .execute("select pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let report = embedded::migrations::runner().run_async(&mut client).await;
    // Closing the session releases the lock even if the unlock fails.
    let _ = client
        .execute("select pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    drop(client);
    let _ = driver.await;
    for migration in report?.applied_migrations() {
        log::info!("applied migration {migration}");
    }
    Ok(())
}

/// Where the event log stands: its newest id and its horizon.
pub async fn event_log_position(pool: &Pool) -> Result<Start, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one(include_str!("../sql/event_log_position.sql"), &[])
        .await?;
    Ok(Start {
        last_id: row.get("last_id"),
        pruned_through: row.get("pruned_through"),
    })
}
