//! The binary and startup: help, and errors that name the setting at fault.

use std::process::Command;

use clap::CommandFactory;
use pgsse::{App, Config};

use crate::support::process::KillOnDrop;
use crate::support::{fresh_database, pg, WAIT};

/// Every setting's environment variable and flag, from the gateway's own definition.
fn settings() -> Vec<(String, String)> {
    Config::command()
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?.to_owned();
            Some((env, format!("--{}", arg.get_long()?)))
        })
        .collect()
}

#[test]
fn help_lists_every_setting_with_its_flag_wrapped_to_100_columns() {
    let out = Command::new(env!("CARGO_BIN_EXE_pgsse"))
        .arg("--help")
        .env("DATABASE_URL", "postgres://u:hunter2@h/db")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let settings = settings();
    assert!(settings.len() >= 25, "{settings:?}");
    // Wrapping may break a line inside "[env: NAME]".
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for (env, flag) in &settings {
        assert!(
            flat.contains(&format!("[env: {env}]")),
            "{env} missing from:\n{help}"
        );
        assert!(
            flat.contains(&format!("{flag} ")),
            "{flag} missing from:\n{help}"
        );
    }
    assert!(!help.contains("hunter2"), "{help}");
    assert!(help.lines().all(|l| l.chars().count() <= 100), "{help}");
}

#[test]
fn the_configuration_page_has_every_setting() {
    let page = include_str!("../../docs/configuration.md");
    for (env, _) in settings() {
        assert!(
            page.contains(&format!("`{env}`")),
            "{env} is not in docs/configuration.md's table"
        );
    }
}

#[test]
fn version_prints_the_packages_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_pgsse"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let version = String::from_utf8(out.stdout).unwrap();
    assert_eq!(version, format!("pgsse {}\n", env!("CARGO_PKG_VERSION")));
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

#[test]
fn a_variable_set_to_nothing_counts_as_unset() {
    let mut gateway = Running::start(
        Command::new(env!("CARGO_BIN_EXE_pgsse"))
            .env("DATABASE_URL", "")
            .env("KEEPALIVE_SECS", ""),
    );
    gateway.line_containing("DATABASE_URL is not set");
    assert_eq!(gateway.exit_code(), Some(2));
}

#[test]
fn a_bad_flag_is_named_and_an_unknown_one_refused() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pgsse"))
            .args(args)
            .env("DATABASE_URL", "postgres://pgsse@127.0.0.1:1/none")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["--keepalive-secs=0"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "pgsse: --keepalive-secs=\"0\" is invalid: expected a positive whole number\n"
    );
    let (code, stderr) = run(&["--bogus"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("unexpected argument '--bogus'"), "{stderr}");
}

#[test]
fn flags_and_a_host_name_configure_the_binary_and_the_log_can_be_json() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut gateway = Running::start(
        Command::new(env!("CARGO_BIN_EXE_pgsse"))
            .args(["--database-url", "postgres://pgsse@127.0.0.1:1/none"])
            .arg(format!("--bind-addr=localhost:{port}"))
            .args(["--max-streams", "7", "--log-format", "json"]),
    );
    let line = gateway.line_containing("serving up to 7 streams");
    let line: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "pgsse::app");
    assert_eq!(line["message"], "serving up to 7 streams at once");
    assert!(line["ts"].as_str().unwrap().ends_with('Z'), "{line}");
    gateway.line_containing(&format!("127.0.0.1:{port}"));
    let answer = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/healthz"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&answer.stdout), "200");
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

/// The gateway binary, run with its log read line by line; killed when dropped, so that a
/// failing test leaves no process behind.
struct Running {
    child: KillOnDrop,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
}

impl Running {
    /// Starts `command` (the binary, or a shell that execs it) with an info log.
    fn start(command: &mut Command) -> Running {
        let mut child = command
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Running {
            child: KillOnDrop::new(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line that contains `text`, within the tests' deadline.
    fn line_containing(&mut self, text: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no line with {text:?} in time; the log:\n{}",
                    self.seen.join("\n")
                )
            });
            self.seen.push(line.clone());
            if line.contains(text) {
                return line;
            }
        }
    }
}

impl Running {
    /// The exit status, once the binary has exited by itself within the tests' deadline.
    fn exit_code(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!(
            "the binary did not exit in time; its log:\n{}",
            self.seen.join("\n")
        )
    }
}

#[test]
fn the_binary_raises_its_open_file_limit_and_sizes_its_connection_cap_from_it() {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    assert!(
        hard > 256,
        "the test needs a hard limit above 256, not {hard}"
    );
    // Started with a soft limit of 256, as many shells give; the database need not be there.
    let mut gateway = Running::start(
        Command::new("sh")
            .args(["-c", "ulimit -Sn 256 && exec \"$0\""])
            .arg(env!("CARGO_BIN_EXE_pgsse"))
            .env("DATABASE_URL", "postgres://pgsse@127.0.0.1:1/none"),
    );
    let cap = gateway.line_containing("serving up to ");
    let raised = format!("open-file limit raised to {hard}");
    assert!(
        gateway.seen.iter().any(|l| l.ends_with(&raised)),
        "{:?}",
        gateway.seen
    );
    // The default cap: the limit less the pool's 16 and a reserve of 64.
    let expected = format!(
        "serving up to {} connections at once (open-file limit {hard})",
        hard - 16 - 64
    );
    assert!(cap.ends_with(&expected), "{cap}");
}

/// Runs the binary with `env` until it logs a line containing `until`; its log lines so far.
fn log_until(env: &[(&str, &str)], until: &str) -> Vec<String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pgsse"));
    let mut gateway = Running::start(command.envs(env.iter().copied()));
    gateway.line_containing(until);
    std::mem::take(&mut gateway.seen)
}
#[tokio::test]
async fn startup_says_once_per_migration_what_it_applied_whether_auth_is_on_and_warns_of_demo_tokens(
) {
    let url = fresh_database(pg::shared()).await;
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("AUTH_JWT_SECRET", "a-secret-of-at-least-32-characters!!"),
        ("DEMO_TOKENS", "1"),
    ];
    let ready = "listener: listening after event";
    let first = log_until(&env, ready);
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .collect::<Vec<_>>();
    assert!(migrations.len() >= 7, "{migrations:?}");
    for file in &migrations {
        let name = file.trim_end_matches(".sql");
        let lines = first.iter().filter(|l| l.contains(name)).count();
        assert_eq!(lines, 1, "{name} in:\n{}", first.join("\n"));
    }
    let has = |lines: &[String], level: &str, text: &str| {
        lines.iter().any(|l| l.contains(level) && l.contains(text))
    };
    assert!(has(&first, "INFO", "authentication is on"), "{first:?}");
    assert!(
        has(
            &first,
            "WARN",
            "DEMO_TOKENS is on: POST /api/demo/token signs anyone in as anyone"
        ),
        "{first:?}"
    );
    // Started again on the migrated database: nothing applied, and no NOTICE from PostgreSQL.
    let env = [("DATABASE_URL", url.as_str())];
    let again = log_until(&env, ready);
    assert!(!again.iter().any(|l| l.contains("NOTICE")), "{again:?}");
    assert!(has(&again, "INFO", "no migrations to apply"), "{again:?}");
    assert!(has(&again, "INFO", "authentication is off"), "{again:?}");
    assert!(
        !again.iter().any(|l| l.contains("DEMO_TOKENS")),
        "{again:?}"
    );
}

#[test]
fn a_jwks_without_audience_or_issuer_warns_at_startup_that_tokens_for_any_application_pass() {
    // The gateway serves before the database and the keys are there; neither is needed here.
    let nowhere = ("DATABASE_URL", "postgres://pgsse@127.0.0.1:1/none");
    let jwks = ("AUTH_JWKS_URL", "http://127.0.0.1:1/jwks");
    let issuer = ("AUTH_ISSUER", "https://idp.example/realms/main");
    let audience = ("AUTH_AUDIENCE", "pgsse");
    let warnings = |env: &[(&str, &str)]| -> Vec<String> {
        let lines = log_until(env, "listening on http://");
        let unchecked = |l: &&String| l.contains("WARN") && l.contains(" not set: ");
        lines.iter().filter(unchecked).cloned().collect()
    };
    let neither = warnings(&[nowhere, jwks]);
    assert_eq!(neither.len(), 1, "{neither:?}");
    assert!(
        neither[0].contains(
            "AUTH_AUDIENCE and AUTH_ISSUER are not set: any token the identity provider signs is \
             accepted, whatever application it was issued for"
        ),
        "{neither:?}"
    );
    let issuer_only = warnings(&[nowhere, jwks, issuer]);
    assert_eq!(issuer_only.len(), 1, "{issuer_only:?}");
    assert!(
        issuer_only[0].contains(
            "AUTH_AUDIENCE is not set: any token the identity provider signs is accepted, \
             whatever application it was issued for"
        ),
        "{issuer_only:?}"
    );
    assert_eq!(
        warnings(&[nowhere, jwks, issuer, audience]),
        Vec::<String>::new()
    );
    // Tokens signed with AUTH_JWT_SECRET are the gateway's own: nothing to warn of.
    let secret = ("AUTH_JWT_SECRET", "a-secret-of-at-least-32-characters!!");
    assert_eq!(warnings(&[nowhere, secret]), Vec::<String>::new());
}

#[tokio::test]
async fn every_request_gets_an_access_log_line_without_its_query() {
    let url = fresh_database(pg::shared()).await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_pgsse"));
    let mut gateway = Running::start(command.env("DATABASE_URL", &url));
    let listening = gateway.line_containing("listening on http://");
    let addr: std::net::SocketAddr = listening.rsplit("http://").next().unwrap().parse().unwrap();
    gateway.line_containing("listener: listening after event");
    let response = crate::support::http::request(
        addr,
        "GET",
        "/api/users/12345?access_token=secret-token",
        &[],
        None,
    )
    .await;
    assert_eq!(response.status, 404);
    let line = gateway.line_containing("pgsse::access");
    assert!(
        line.contains("GET /api/users/12345 404 HTTP/1.1 "),
        "{line}"
    );
    assert!(line.ends_with(" ms"), "{line}");
    assert!(!line.contains("secret"), "{line}");
}
