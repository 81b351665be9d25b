//! Queries, one module per table. Functions take a connection and return typed rows; the SQL
//! lives in `sql/`, runnable in psql.

pub mod boards;
pub mod events;
pub mod paths;
pub mod users;
