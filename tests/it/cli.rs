//! The binary and startup: help, and errors that name the setting at fault.

use std::process::Command;

use pgsse::{App, Config};

use crate::support::{fresh_database, pg, WAIT};

#[test]
fn help_lists_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_pgsse"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for setting in pgsse::config::SETTINGS {
        assert!(
            help.contains(setting.name),
            "{} missing from:\n{help}",
            setting.name
        );
    }
}

#[test]
fn a_missing_database_url_stops_the_binary_with_a_message_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_pgsse"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL is not set"), "{stderr}");
}

#[tokio::test]
async fn a_bind_address_in_use_fails_startup_naming_bind_addr() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let url = fresh_database(pg::shared()).await;
    let config = Config::from_lookup(|name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "BIND_ADDR" => Some(addr.to_string()),
        _ => None,
    })
    .unwrap();
    let err = tokio::time::timeout(WAIT, App::build(config))
        .await
        .expect("fails in time");
    let message = err.err().expect("startup fails").to_string();
    assert!(
        message.starts_with(&format!("BIND_ADDR={addr}: cannot listen")),
        "{message}"
    );
}
