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

#[test]
fn the_binary_raises_its_open_file_limit_and_sizes_its_connection_cap_from_it() {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    assert!(
        hard > 256,
        "the test needs a hard limit above 256, not {hard}"
    );
    // Started with a soft limit of 256, as many shells give; the database need not be there.
    let mut gateway = Command::new("sh")
        .args(["-c", "ulimit -Sn 256 && exec \"$0\""])
        .arg(env!("CARGO_BIN_EXE_pgsse"))
        .env("DATABASE_URL", "postgres://pgsse@127.0.0.1:1/none")
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = gateway.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut seen = Vec::new();
    let cap = loop {
        let line = lines.next().expect("the gateway logs its cap").unwrap();
        if let Some(at) = line.find("serving up to ") {
            break line[at..].to_owned();
        }
        seen.push(line);
    };
    gateway.kill().unwrap();
    gateway.wait().unwrap();
    assert!(
        seen.iter()
            .any(|l| l.ends_with(&format!("open-file limit raised to {hard}"))),
        "{seen:?}"
    );
    // The default cap: the limit less the pool's 16 and a reserve of 64.
    let expected = format!(
        "serving up to {} connections at once (open-file limit {hard})",
        hard - 16 - 64
    );
    assert_eq!(cap, expected);
}
