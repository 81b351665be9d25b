//! The benchmark in miniature: the `pgsse-bench` binary with a few hundred clients and a few
//! seconds of rows against a gateway of the test's own. Only delivery is asserted (every row
//! reaches every client once, in order), from the table it prints and the JSON it writes;
//! figures belong to `make bench`. The writers case runs briefly too: that it reports a figure
//! for each table and setting, not what the figures are.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use tokio::process::Command;
use tokio::time::timeout;

use crate::support::tls::scratch;
use crate::support::{spawn_app, WAIT};

/// `pgsse-bench` with `args`, killed if the test ends first.
fn bench(args: &[&str]) -> Command {
    let mut command = Command::new(bench_binary());
    command.args(args).kill_on_drop(true);
    command
}

/// The `pgsse-bench` binary, built on first use by the Cargo that built these tests, in their
/// profile. It is a package of its own in the workspace (`bench/`), and Cargo builds another
/// package's binaries for a test only when asked (`CARGO_BIN_EXE_*` names only the gateway's).
/// When `make test` has built the workspace already, the build finds nothing to do.
fn bench_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let mut build = std::process::Command::new(env!("CARGO"));
        build.args(["build", "--package", "pgsse-bench", "--bin", "pgsse-bench"]);
        build.args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ]);
        build.arg(manifest);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let out = build.output().expect("cargo runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "cannot build pgsse-bench:\n{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let binary = stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|message| message["target"]["name"] == "pgsse-bench")
            .find_map(|message| message["executable"].as_str().map(PathBuf::from));
        binary.unwrap_or_else(|| panic!("cargo built no pgsse-bench binary:\n{stdout}"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_clients_and_twenty_stalled_ones_receive_every_row_once_and_in_order() {
    let app = spawn_app().await;
    let json = scratch("bench-smoke").join("results.json");
    let (gateway, json_path) = (app.addr.to_string(), json.to_str().unwrap());
    let mut run = bench(&["--gateway", &gateway, "--database-url", &app.database_url]);
    run.args(["--cases", "300x100+20stalled:2s", "--json", json_path]);
    let out = timeout(WAIT * 3, run.output())
        .await
        .expect("the load finishes in time")
        .expect("pgsse-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let row = "| 300 clients, 100 rows/s, +20 stalled, 2 s | 300 / 0 |";
    assert!(stdout.contains(row), "{stdout}");
    assert!(stdout.contains("| 60000 / 60000 | 0 / 0 / 0 |"), "{stdout}");
    assert!(
        stdout.contains(&format!("results: {json_path}")),
        "{stdout}"
    );

    let results: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let report = &results["cases"][0];
    assert_eq!(report["kind"], "load", "{report}");
    assert_eq!(report["clients_held"], 300, "{report}");
    assert_eq!(report["clients_failed"], 0, "{report}");
    assert_eq!(report["rows_written"], 200, "{report}");
    let clean = |expected: u64| {
        serde_json::json!({ "expected": expected, "received": expected, "lost": 0,
            "duplicated": 0, "out_of_order": 0, "foreign": 0 })
    };
    assert_eq!(report["gateway"], clean(300 * 200), "{report}");
    assert_eq!(report["floor"]["lost"], 0, "{report}");
    assert_eq!(report["streams_ended"], 0, "{report}");
    // The stalled clients read nothing until the others had every row, then got them all.
    let stalled = &report["stalled"];
    assert_eq!(stalled["clients_held"], 20, "{report}");
    assert_eq!(stalled["clients_failed"], 0, "{report}");
    assert_eq!(stalled["received_before_resuming"], 0, "{report}");
    assert_eq!(stalled["deliveries"], clean(20 * 200), "{report}");
    assert_eq!(stalled["streams_ended"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writers_case_reports_commits_per_second_for_each_table_with_synchronous_commit_on_and_off(
) {
    let app = spawn_app().await;
    let json = scratch("bench-writers").join("results.json");
    let (gateway, json_path) = (app.addr.to_string(), json.to_str().unwrap());
    let mut run = bench(&["--gateway", &gateway, "--database-url", &app.database_url]);
    run.args([
        "--cases",
        "writers",
        "--writers-seconds",
        "0.5",
        "--writers",
        "3",
    ]);
    run.args(["--json", json_path]);
    let out = timeout(WAIT, run.output())
        .await
        .expect("the writers case finishes in time")
        .expect("pgsse-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let head = "| commits/s, 3 connections, 0.5 s each | (a) no trigger | (b) pg_notify trigger \
                | (c) pgsse.watch | (d) board | (c) / (b) |";
    assert!(stdout.contains(head), "{stdout}");
    for setting in ["on", "off"] {
        let label = format!("| synchronous_commit {setting} |");
        let line = stdout.lines().find(|l| l.starts_with(&label));
        let line = line.unwrap_or_else(|| panic!("no line {label}:\n{stdout}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "", the label, four commits/s, the percentage, "".
        assert_eq!(cells.len(), 8, "{line}");
        for rate in &cells[2..6] {
            assert!(rate.parse::<u64>().is_ok_and(|r| r > 0), "{line}");
        }
        let percent = cells[6]
            .strip_suffix('%')
            .and_then(|p| p.parse::<u64>().ok());
        assert!(percent.is_some_and(|p| p > 0), "{line}");
    }
    assert!(
        stdout.contains("- writers: 3 connections inserted"),
        "{stdout}"
    );

    let results: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let report = &results["cases"][0];
    assert_eq!(report["kind"], "writers", "{report}");
    assert_eq!(report["connections"], 3, "{report}");
    let runs = report["runs"].as_array().expect("runs");
    let seen: Vec<(&str, bool)> = runs
        .iter()
        .map(|r| {
            let table = r["table"].as_str().unwrap();
            (table, r["synchronous_commit"].as_bool().unwrap())
        })
        .collect();
    let tables = ["plain", "notify", "watched", "board"];
    let expected: Vec<(&str, bool)> = [true, false]
        .iter()
        .flat_map(|on| tables.iter().map(move |t| (*t, *on)))
        .collect();
    assert_eq!(seen, expected, "{report}");
    for run in runs {
        assert!(run["commits"].as_u64().is_some_and(|c| c > 0), "{run}");
    }
    // Every commit counted for the watched table made an event; the table was watched only
    // while the case ran.
    let counted: u64 = runs
        .iter()
        .filter(|r| r["table"] == "watched")
        .map(|r| r["commits"].as_u64().unwrap())
        .sum();
    let sql = app.sql().await;
    let events = sql
        .one(
            "select count(*) from pgsse.event where kind = 'bench.row'",
            &[],
        )
        .await;
    assert!(
        events.get::<_, i64>(0) as u64 >= counted,
        "{counted} commits"
    );
    let watches = sql.one("select count(*) from pgsse.watches", &[]).await;
    assert_eq!(watches.get::<_, i64>(0), 0);
}

#[tokio::test]
async fn a_bad_case_stops_pgsse_bench_with_a_message_naming_it() {
    let mut run = bench(&[
        "--database-url",
        "postgres://unused",
        "--cases",
        "1x500,10xfast",
    ]);
    let out = timeout(WAIT, run.output())
        .await
        .expect("pgsse-bench answers in time")
        .expect("pgsse-bench runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value '10xfast' for '--cases <LIST>': not a case"),
        "{stderr}"
    );
}

#[tokio::test]
async fn pgsse_bench_without_a_database_says_how_to_give_it_one() {
    let mut run = bench(&[]);
    run.env_remove("DATABASE_URL");
    let out = timeout(WAIT, run.output())
        .await
        .expect("pgsse-bench answers in time")
        .expect("pgsse-bench runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--database-url <URL>"), "{stderr}");
}
