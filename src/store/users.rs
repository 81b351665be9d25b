//! `app_user` rows.

use serde::Serialize;
use tokio_postgres::{Client, Row};

use super::StoreError;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// RFC 3339 timestamp.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&Row> for User {
    fn from(row: &Row) -> User {
        User {
            id: row.get("id"),
            username: row.get("username"),
            created_at: row.get("created_at"),
        }
    }
}

pub async fn insert(client: &Client, username: &str) -> Result<User, StoreError> {
    let row = client
        .query_one(include_str!("../../sql/user_insert.sql"), &[&username])
        .await?;
    Ok(User::from(&row))
}

pub async fn by_id(client: &Client, id: i64) -> Result<Option<User>, StoreError> {
    let row = client
        .query_opt(include_str!("../../sql/user_by_id.sql"), &[&id])
        .await?;
    Ok(row.as_ref().map(User::from))
}
