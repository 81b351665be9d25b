//! Reads of the event log, `pgsse.event`.

use tokio_postgres::{Client, Statement};

use crate::event::Frame;

/// Rows per read when catching up from the table.
pub const PAGE: i64 = 500;

pub const EVENTS_AFTER: &str = include_str!("../../sql/events_after.sql");

/// Prepares [`EVENTS_AFTER`] on a connection, for repeated use by [`after`].
pub async fn prepare(client: &Client) -> Result<Statement, tokio_postgres::Error> {
    client.prepare(EVENTS_AFTER).await
}

/// Up to `limit` events with ids above `after`, oldest first, rendered as frames. `statement` is
/// [`EVENTS_AFTER`] prepared on `client`.
pub async fn after(
    client: &Client,
    statement: &Statement,
    after: i64,
    limit: i64,
) -> Result<Vec<Frame>, tokio_postgres::Error> {
    let rows = client.query(statement, &[&after, &limit]).await?;
    Ok(rows
        .iter()
        .map(|row| Frame::render(row.get("id"), row.get("kind"), &row.get("payload")))
        .collect())
}
