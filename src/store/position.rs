//! Reads of the REST API together with the event log's position in the same snapshot, so that a
//! client that loads through the API and then opens the stream with `?lastEventId=<position>`
//! gets exactly the events its read does not reflect (`migrations/V10__position.sql` says why).

use tokio_postgres::{Client, IsolationLevel};

use super::StoreError;

/// What `read` returns, and the event log's position in the snapshot it read: both in one
/// REPEATABLE READ READ ONLY transaction, whose statements all see the snapshot of its first.
pub async fn read<T>(
    client: &mut Client,
    read: impl AsyncFnOnce(&Client) -> Result<T, StoreError>,
) -> Result<(T, i64), StoreError> {
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let value = read(transaction.client()).await?;
    let position = transaction
        .query_one(include_str!("../../sql/position.sql"), &[])
        .await?
        .get("position");
    transaction.commit().await?;
    Ok((value, position))
}
