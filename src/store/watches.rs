//! `pgsse.watches`: the kinds of events the watched tables make, and the JSON Schema of each
//! kind's data, derived from the chosen columns' types ([`schema`]).

pub mod schema;

use serde::Deserialize;
use serde_json::Value;
use tokio_postgres::Client;

use self::schema::{Type, Types};
use super::StoreError;

/// A watched table's kind of event, as its definition makes it (its expressions left out).
pub struct Watch {
    pub kind: String,
    /// The table, as the database names it (qualified when it is not on the search path).
    pub table: String,
    /// Some of `delete`, `insert` and `update`, in that order.
    pub operations: Vec<String>,
    /// Whether its events are for the users a recipient expression names, not for everyone.
    pub targeted: bool,
    /// Whether its events have a topic, which `?topic=` filters by.
    pub topic: bool,
    /// The chosen columns, in the order of the data's `row`.
    pub columns: Vec<Column>,
}

/// A chosen column of a watched table.
#[derive(Deserialize)]
pub struct Column {
    pub name: String,
    /// Its type as declared (`numeric(10,2)`); `None` for a column the table no longer has.
    pub declared: Option<String>,
    /// Its type's oid; `None` as `declared`.
    #[serde(rename = "type")]
    pub type_oid: Option<u32>,
    pub not_null: bool,
}

/// Every watched kind, by name, and what their columns' types are made of.
pub async fn all(client: &Client) -> Result<(Vec<Watch>, Types), StoreError> {
    let rows = client
        .query(include_str!("../../sql/event_kinds.sql"), &[])
        .await?;
    let watches: Vec<Watch> = rows
        .iter()
        .map(|row| Watch {
            kind: row.get("kind"),
            table: row.get("table"),
            operations: row.get("operations"),
            targeted: row.get("targeted"),
            topic: row.get("topic"),
            columns: columns(row.get("columns")),
        })
        .collect();
    let oids: Vec<u32> = watches
        .iter()
        .flat_map(|w| w.columns.iter().filter_map(|c| c.type_oid))
        .collect();
    let rows = client
        .query(include_str!("../../sql/json_types.sql"), &[&oids])
        .await?;
    Ok((watches, rows.iter().map(Type::from).collect()))
}

/// The columns as the query lists them, a JSON array it builds itself.
fn columns(json: Value) -> Vec<Column> {
    serde_json::from_value(json).expect("event_kinds.sql lists columns as Column reads them")
}
