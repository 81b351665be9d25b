//! Saying why the database cannot be reached, and what to check: an operator reads this in the
//! log and in `/readyz`, often at the moment a deployment does not come up.

use std::error::Error;
use std::io;

use tokio_postgres::error::{DbError, SqlState};

/// `err` with every cause it wraps, on one line ("cannot connect to PostgreSQL: error connecting
/// to server: Connection refused (os error 111)"), then a hint for the causes that have one.
pub fn explain(err: &(dyn Error + 'static), target: &str) -> String {
    let mut text = String::new();
    let mut next = Some(err);
    while let Some(cause) = next {
        let part = cause.to_string().replace('\n', "; ");
        // tokio-postgres says "db error" and then the server's message; wrappers repeat causes.
        if part != "db error" && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = cause.source();
    }
    if let Some(hint) = hint(err, target) {
        text.push_str(" (");
        text.push_str(&hint);
        text.push(')');
    }
    text
}

fn hint(err: &(dyn Error + 'static), target: &str) -> Option<String> {
    let mut next = Some(err);
    while let Some(cause) = next {
        if let Some(db) = cause.downcast_ref::<DbError>() {
            return db_hint(db.code());
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return io_hint(io, target);
        }
        next = cause.source();
    }
    None
}

fn db_hint(code: &SqlState) -> Option<String> {
    let hint = match code {
        c if *c == SqlState::INVALID_CATALOG_NAME => {
            "create the database, or correct its name in DATABASE_URL; the gateway keeps trying"
        }
        c if *c == SqlState::INVALID_PASSWORD
            || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            "check the user and password in DATABASE_URL, and pg_hba.conf"
        }
        c if *c == SqlState::CANNOT_CONNECT_NOW => "PostgreSQL is starting up or shutting down",
        c if *c == SqlState::TOO_MANY_CONNECTIONS => "PostgreSQL's max_connections are all in use",
        _ => return None,
    };
    Some(hint.to_owned())
}

fn io_hint(err: &io::Error, target: &str) -> Option<String> {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => Some(format!(
            "nothing accepts connections at {target}: is PostgreSQL running and listening there \
             (listen_addresses, port)?"
        )),
        io::ErrorKind::TimedOut => Some(format!(
            "no answer from {target}: check the address, and that no firewall drops the packets"
        )),
        _ if err.to_string().contains("lookup") => {
            Some("the host name in DATABASE_URL does not resolve".to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_cause_is_spelled_out_with_a_hint() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot connect to PostgreSQL")]
        struct Wrapper(#[source] io::Error);
        let err = Wrapper(io::Error::from(io::ErrorKind::ConnectionRefused));
        let text = explain(&err, "db:5432/app");
        assert!(
            text.starts_with("cannot connect to PostgreSQL: connection refused"),
            "{text}"
        );
        assert!(
            text.ends_with("(nothing accepts connections at db:5432/app: is PostgreSQL running and listening there (listen_addresses, port)?)"),
            "{text}"
        );
    }
}
