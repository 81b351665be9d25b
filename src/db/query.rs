//! A query on a pooled connection under a deadline: the idiom of every read or write the gateway
//! makes outside a request of the REST API (replays, the resume check, pruning, the metrics'
//! figures), written once.

use std::time::Duration;

use deadpool_postgres::{Client, Pool, PoolError};

/// What a pooled query under a deadline can fail with. Each says what went wrong as its cause
/// does, for the log.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No connection could be had from the pool (the database is away, say).
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The query itself failed.
    #[error(transparent)]
    Query(#[from] tokio_postgres::Error),
    /// The connection and the query together took longer than the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Runs `query` on a connection from `pool`, and gives up once `deadline` has passed, waiting
/// for the connection included.
pub async fn query_within<T>(
    pool: &Pool,
    deadline: Duration,
    query: impl AsyncFnOnce(&Client) -> Result<T, tokio_postgres::Error>,
) -> Result<T, QueryError> {
    let run = async {
        let client = pool.get().await?;
        Ok(query(&client).await?)
    };
    tokio::time::timeout(deadline, run)
        .await
        .unwrap_or(Err(QueryError::Timeout(deadline)))
}
