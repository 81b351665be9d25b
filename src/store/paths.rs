//! `path` rows.

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{Client, Row};

use super::StoreError;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Path {
    pub id: i64,
    pub board_id: i64,
    pub user_id: i64,
    pub user_username: String,
    /// `[[x, y], …]` grid positions in drawing order.
    #[schema(value_type = Vec<[i64; 2]>)]
    pub points: Value,
    /// RFC 3339 timestamp.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&Row> for Path {
    fn from(row: &Row) -> Path {
        Path {
            id: row.get("id"),
            board_id: row.get("board_id"),
            user_id: row.get("user_id"),
            user_username: row.get("user_username"),
            points: row.get("points"),
            created_at: row.get("created_at"),
        }
    }
}

/// Inserts a path on board `board_id`; `None` when the user does not exist.
pub async fn insert(
    client: &Client,
    board_id: i64,
    username: &str,
    points: &Value,
) -> Result<Option<Path>, StoreError> {
    let row = client
        .query_opt(
            include_str!("../../sql/path_insert.sql"),
            &[&board_id, &username, points],
        )
        .await?;
    Ok(row.as_ref().map(Path::from))
}

pub async fn by_id(client: &Client, id: i64) -> Result<Option<Path>, StoreError> {
    let row = client
        .query_opt(include_str!("../../sql/path_by_id.sql"), &[&id])
        .await?;
    Ok(row.as_ref().map(Path::from))
}

/// Up to `limit` of a board's paths with ids above `after`, in drawing order.
pub async fn page(
    client: &Client,
    board_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<Path>, StoreError> {
    let rows = client
        .query(
            include_str!("../../sql/paths_page.sql"),
            &[&board_id, &after, &limit],
        )
        .await?;
    Ok(rows.iter().map(Path::from).collect())
}
