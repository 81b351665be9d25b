//! What a query of the REST API can fail with: PostgreSQL's errors told apart once, for every
//! table. A constraint's name stays in the error (for the log), never in what a client is told.

use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint: such a row exists already.
    #[error("conflicts with a row that exists already ({})", constraint_or(.constraint))]
    Duplicate { constraint: Option<String> },
    /// A foreign key: the row it refers to does not exist.
    #[error("refers to a row that does not exist ({})", constraint_or(.constraint))]
    MissingReference { constraint: Option<String> },
    /// A check or not-null constraint.
    #[error("breaks a rule of the table ({})", constraint_or(.constraint))]
    Invalid { constraint: Option<String> },
    /// A value refused with a message meant for whoever sent it: PostgreSQL's data exceptions
    /// (SQLSTATE class 22), among them what pgsse's own functions raise
    /// (`invalid_parameter_value`).
    #[error("{message}")]
    Refused { code: SqlState, message: String },
    /// The database cannot be reached, or is going away.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] tokio_postgres::Error),
    /// Anything else: a fault of the gateway's, not of the request.
    #[error(transparent)]
    Other(tokio_postgres::Error),
}

fn constraint_or(constraint: &Option<String>) -> &str {
    constraint.as_deref().unwrap_or("no constraint named")
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> StoreError {
        let Some(db) = err.as_db_error() else {
            let io = std::error::Error::source(&err).is_some_and(|s| s.is::<std::io::Error>());
            return match err.is_closed() || io {
                true => StoreError::Unavailable(err),
                false => StoreError::Other(err),
            };
        };
        let constraint = db.constraint().map(str::to_owned);
        match *db.code() {
            SqlState::UNIQUE_VIOLATION => StoreError::Duplicate { constraint },
            SqlState::FOREIGN_KEY_VIOLATION => StoreError::MissingReference { constraint },
            SqlState::CHECK_VIOLATION | SqlState::NOT_NULL_VIOLATION => {
                StoreError::Invalid { constraint }
            }
            ref code if code.code().starts_with("22") => StoreError::Refused {
                code: code.clone(),
                message: db.message().to_owned(),
            },
            SqlState::ADMIN_SHUTDOWN
            | SqlState::CANNOT_CONNECT_NOW
            | SqlState::TOO_MANY_CONNECTIONS => StoreError::Unavailable(err),
            _ => StoreError::Other(err),
        }
    }
}
