//! Connections to PostgreSQL: the pool for queries, and migrations at startup.
//!
//! The listener's dedicated connection is made in `listener`, never here: pooled connections are
//! driven in the background, which throws notifications away.
//!
//! The gateway starts without its database: it serves at once, and the migrations are retried
//! with backoff until the database is there (`/readyz` says why it waits meanwhile).
//!
//! The demo's tables are in `DEMO_SCHEMA` (`schema`): the migrations run with their search_path
//! on it, and so does every pooled connection.

mod hint;
mod query;
mod schema;

pub use hint::explain;
pub use query::{query_within, QueryError};
pub use schema::SchemaError;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::backoff::Backoff;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long the pool waits for a connection (and to make one), and how long background work on a
/// pooled connection (a replay, a prune) waits on the database before giving up.
pub const POOL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting may take, the startup handshake included (tokio-postgres's own
/// connect_timeout covers only the TCP connect).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Serializes migrations between gateway instances starting together (refinery takes no lock).
const MIGRATION_LOCK: i64 = 7_305_011_400;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("cannot connect to PostgreSQL: no answer within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout,
    #[error("database query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] refinery::Error),
    #[error("cannot get a pooled connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// The connection pool used by the REST API and by replays. Its connections find the demo's
/// tables in `DEMO_SCHEMA` (their search_path is set when each connects).
pub fn pool(config: &Config) -> Pool {
    let mut pg = with_timeouts(config.database.clone());
    let options = schema::search_path_option(pg.get_options(), &config.demo_schema);
    pg.options(&options);
    let manager = Manager::from_config(
        pg,
        NoTls,
        // Verified: a pooled connection answers a round trip before reuse, within the recycle
        // timeout, so one left half-open by a dead network path is replaced, not handed out.
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
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

/// Applies pending migrations, with the demo's tables in `schema`, retrying with backoff until
/// they are applied (`true`) or shutdown fires first (`false`). Each failure is logged with its
/// cause and a hint, and `/readyz` gives the same reason until the database is there.
pub async fn migrate_until_done(
    pg: &tokio_postgres::Config,
    schema: &str,
    metrics: &Metrics,
    mut shutdown: Shutdown,
) -> bool {
    let target = describe(pg);
    let mut backoff = Backoff::default();
    loop {
        let result = tokio::select! {
            result = migrate(pg, schema) => result,
            () = shutdown.fired() => return false,
        };
        let err = match result {
            Ok(()) => return true,
            Err(err) => err,
        };
        let why = format!("database {target}: {}", explain(&err, &target));
        let delay = backoff.next_delay();
        log::warn!("{why}; retrying in {} ms", delay.as_millis());
        metrics.set_not_ready(why);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.fired() => return false,
        }
    }
}

/// Applies pending migrations, holding an advisory lock so that two instances never race. They
/// run with their search_path on `schema`, so that the demo's tables and refinery's history table
/// are made there; before the first, `schema::prepare` refuses a schema the application's own
/// tables are in the way of.
async fn migrate(pg: &tokio_postgres::Config, schema: &str) -> Result<(), DbError> {
    let pg = with_timeouts(pg.clone());
    let (mut client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, pg.connect(NoTls))
        .await
        .map_err(|_| DbError::ConnectTimeout)?
        .map_err(DbError::Connect)?;
    let driver = tokio::spawn(connection);
    // refinery's `create table if not exists` of its history table would send a NOTICE, logged
    // on every start.
    client
        .batch_execute("set client_min_messages = warning")
        .await?;
    client
        .execute("select pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    client
        .batch_execute(&format!("set search_path = \"{schema}\""))
        .await?;
    let report = match schema::prepare(&mut client, schema).await {
        Ok(()) => embedded::migrations::runner()
            .run_async(&mut client)
            .await
            .map_err(DbError::from),
        Err(err) => Err(err),
    };
    // Closing the session releases the lock even if the unlock fails.
    let _ = client
        .execute("select pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    drop(client);
    let _ = driver.await;
    // refinery logs each migration as it applies it, and that there was none to apply.
    report?;
    Ok(())
}

/// `host:port/dbname` of a connection config, for messages (never the password).
pub fn describe(pg: &tokio_postgres::Config) -> String {
    let host = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{}",
        pg.get_dbname().unwrap_or("(default database)")
    )
}
