//! Queries, one module per table. Functions take a connection and return typed rows; the SQL
//! lives in `sql/`, runnable in psql.

pub mod boards;
mod error;
pub mod events;
pub mod paths;
pub mod position;
pub mod users;
pub mod watches;

pub use error::StoreError;
