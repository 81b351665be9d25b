//! The demo's schema (`DEMO_SCHEMA`): where the demo application's tables and the migrations'
//! history are, and whether a database leaves room for them before the first migration there.
//!
//! The gateway's own objects live in schema `pgsse`. The demo's tables (`app_user`, `board`,
//! `path`, `notification`) are made by the migrations in the first schema of their search_path,
//! which is the demo's schema, and every pooled connection reads them there. A database that
//! already has tables of those names there is the application's: the gateway refuses to migrate
//! rather than touch them, and says which schema to give the demo instead.

use tokio_postgres::Client;

/// Why the demo's schema cannot take the gateway's migrations.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema and what is already there under a name the demo's migrations would make.
    #[error(
        "schema {0} already has a {1} that the gateway did not make, and the gateway never \
         touches the application's tables: set DEMO_SCHEMA to a schema of the demo's own \
         (e.g. DEMO_SCHEMA=pgsse_demo), which the gateway creates"
    )]
    Taken(String, String),
    /// The schema, and those where the migrations' history was found instead.
    #[error(
        "schema pgsse already exists, but the gateway's migrations have not run with \
         DEMO_SCHEMA={schema}{}", elsewhere(.migrated_in)
    )]
    Moved {
        schema: String,
        migrated_in: Vec<String>,
    },
}

fn elsewhere(schemas: &[String]) -> String {
    match schemas {
        [] => "; schema pgsse is not the gateway's: rename it, or use another database".into(),
        [one] => format!("; they ran with DEMO_SCHEMA={one}: set it back"),
        many => format!(
            "; their history (refinery_schema_history) is in schemas {}: set DEMO_SCHEMA to the \
             one the gateway used",
            many.join(", ")
        ),
    }
}

/// The startup option that puts every new connection's search_path on `schema`, after any
/// options the connection string carries (a later `-c` wins).
pub fn search_path_option(existing: Option<&str>, schema: &str) -> String {
    let ours = format!("-c search_path={schema}");
    match existing.map(str::trim) {
        Some(theirs) if !theirs.is_empty() => format!("{theirs} {ours}"),
        _ => ours,
    }
}

/// Makes `schema` ready for the migrations: creates it if missing and, if the migrations have not
/// run there yet, checks that nothing of the application's stands where the demo's tables would
/// go. On a refusal nothing is left behind (the schema included).
pub async fn prepare(client: &mut Client, schema: &str) -> Result<(), super::DbError> {
    let transaction = client.transaction().await?;
    let exists = transaction
        .query_one(
            "select exists (select 1 from pg_namespace where nspname = $1)",
            &[&schema],
        )
        .await?
        .get::<_, bool>(0);
    if !exists {
        // A plain identifier (config::values::schema), quoted all the same.
        transaction
            .batch_execute(&format!("create schema \"{schema}\""))
            .await?;
    }
    let row = transaction
        .query_one(include_str!("../../sql/demo_schema.sql"), &[&schema])
        .await?;
    if row.get::<_, bool>("migrated_here") {
        transaction.commit().await?;
        return Ok(());
    }
    let taken: Vec<String> = row.get("taken");
    if let Some(first) = taken.into_iter().next() {
        return Err(SchemaError::Taken(schema.to_owned(), first).into());
    }
    if row.get::<_, bool>("pgsse_exists") {
        let migrated_in: Vec<String> = row.get("migrated_in");
        let schema = schema.to_owned();
        return Err(SchemaError::Moved {
            schema,
            migrated_in,
        }
        .into());
    }
    transaction.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_path_comes_after_the_connection_strings_own_options() {
        assert_eq!(search_path_option(None, "public"), "-c search_path=public");
        assert_eq!(
            search_path_option(Some("-c statement_timeout=5s"), "pgsse_demo"),
            "-c statement_timeout=5s -c search_path=pgsse_demo"
        );
    }
}
