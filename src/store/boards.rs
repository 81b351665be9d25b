//! `board` rows.

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{Client, Row};

use super::StoreError;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Board {
    pub id: i64,
    pub name: String,
    pub creator_id: i64,
    pub creator_username: String,
    pub rows: i32,
    pub cols: i32,
    /// `[[x, y], …]` grid positions.
    #[schema(value_type = Vec<[i64; 2]>)]
    pub dots: Value,
    /// RFC 3339 timestamp.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// What a new board is made of.
pub struct NewBoard<'a> {
    pub name: &'a str,
    pub creator: &'a str,
    pub rows: i32,
    pub cols: i32,
    pub dots: Value,
}

impl From<&Row> for Board {
    fn from(row: &Row) -> Board {
        Board {
            id: row.get("id"),
            name: row.get("name"),
            creator_id: row.get("creator_id"),
            creator_username: row.get("creator_username"),
            rows: row.get("rows"),
            cols: row.get("cols"),
            dots: row.get("dots"),
            created_at: row.get("created_at"),
        }
    }
}

/// Inserts a board; `None` when its creator does not exist.
pub async fn insert(client: &Client, new: &NewBoard<'_>) -> Result<Option<Board>, StoreError> {
    let row = client
        .query_opt(
            include_str!("../../sql/board_insert.sql"),
            &[&new.name, &new.creator, &new.rows, &new.cols, &new.dots],
        )
        .await?;
    Ok(row.as_ref().map(Board::from))
}

pub async fn by_id(client: &Client, id: i64) -> Result<Option<Board>, StoreError> {
    let row = client
        .query_opt(include_str!("../../sql/board_by_id.sql"), &[&id])
        .await?;
    Ok(row.as_ref().map(Board::from))
}

/// Up to `limit` boards with ids below `before` (all when `None`), newest first.
pub async fn page(
    client: &Client,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Board>, StoreError> {
    let rows = client
        .query(
            include_str!("../../sql/boards_page.sql"),
            &[&before, &limit],
        )
        .await?;
    Ok(rows.iter().map(Board::from).collect())
}
