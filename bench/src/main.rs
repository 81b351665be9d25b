//! `pgsse-bench`: puts a running gateway under load and prints what it measured.
//!
//! `make bench` starts a private PostgreSQL and a release gateway, then runs this with the
//! gateway's address, database and pid. Results go to stdout as a Markdown table and to a JSON
//! file. It is not part of the gateway but a package of its own in the workspace (`bench/`), with
//! its own dependencies: it uses the gateway's library only for the open-file limit and the
//! listener's channel.
//!
//! - [`args`]: the flags, parsed by clap; [`case`]: the cases `--cases` lists.
//! - [`bench`]: the core: one load run, its SSE clients, paced writer and bare `LISTEN` client.
//! - [`load`], [`idle`], [`ingest`], [`fleet`], [`writers`]: the cases; [`hold`]: the helper process (`pgsse-bench
//!   hold`) that the idle and fleet cases start to hold more streams than one process may.
//! - [`gateway`]: the gateway watched from outside; [`report`]: the table and the JSON.

mod args;
mod bench;
mod case;
mod fleet;
mod gateway;
mod hold;
mod idle;
mod ingest;
mod load;
mod report;
mod writers;

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use pgsse::app::raise_open_file_limit;

use self::args::{Args, Cli, Command};
use self::bench::Target;
use self::case::Case;
use self::gateway::Gateway;
use self::report::{CaseResult, Results};

/// Source addresses from here on are the idle case's; load cases use the ones below.
const IDLE_SOURCES: usize = 1000;
/// And from here on the fleet case's.
const FLEET_SOURCES: usize = 2000;

fn main() -> ExitCode {
    // A bad flag stops the run here, with clap's message and status 2, before anything starts.
    let cli = Cli::parse();
    if let Some(Command::Hold(args)) = cli.command {
        runtime().block_on(hold::run(args));
        return ExitCode::SUCCESS;
    }
    let args = cli
        .run
        .expect("clap requires the run's flags when there is no subcommand");
    let _ = pretty_env_logger::formatted_timed_builder()
        .parse_filters(&std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    match raise_open_file_limit() {
        Ok(limit) => eprintln!("pgsse-bench: open-file limit {limit}"),
        Err(err) => eprintln!("pgsse-bench: cannot raise the open-file limit: {err}"),
    }
    let results = match runtime().block_on(run(&args)) {
        Ok(results) => results,
        Err(err) => return fail(&err),
    };
    println!("{}", report::table(&results));
    println!("results: {}", args.json.display());
    if all_clean(&results) {
        ExitCode::SUCCESS
    } else {
        eprintln!("pgsse-bench: a case failed or lost, duplicated or reordered deliveries");
        ExitCode::FAILURE
    }
}

async fn run(args: &Args) -> Result<Results, String> {
    let mut gateway = Gateway::connect(args.gateway, args.gateway_pid).await?;
    let target = Target {
        gateway: args.gateway,
        database_url: args.database_url.clone(),
    };
    let mut results = Results {
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_kib: memory_kib(),
        seconds_per_load: args.seconds,
        cases: Vec::new(),
    };
    for (index, case) in args.cases.iter().enumerate() {
        eprintln!("pgsse-bench: {}", case.name());
        let result = match run_case(args, &target, &mut gateway, case, index).await {
            Ok(result) => result,
            Err(error) => CaseResult::Failed {
                case: case.name(),
                error,
            },
        };
        results.cases.push(result);
        // Written after every case, so that a run cut short keeps what it measured.
        report::write_json(&results, &args.json)
            .map_err(|e| format!("{}: {e}", args.json.display()))?;
    }
    Ok(results)
}

async fn run_case(
    args: &Args,
    target: &Target,
    gateway: &mut Gateway,
    case: &Case,
    index: usize,
) -> Result<CaseResult, String> {
    match case {
        Case::Load {
            clients,
            rate,
            stalled,
            seconds,
            http2,
        } => {
            let mut load = load::load(*clients, *rate, args, index);
            load.stalled = *stalled;
            load.http2 = http2.then_some(args.h2_streams);
            load.seconds = seconds.unwrap_or(load.seconds);
            let limit = Duration::from_secs_f64(load.seconds * 4.0 + 300.0);
            let run = load::run(target, gateway, load, case.name());
            let result = tokio::time::timeout(limit, run)
                .await
                .map_err(|_| format!("did not finish within {} s", limit.as_secs()))??;
            Ok(CaseResult::Load(Box::new(result)))
        }
        Case::Idle { kept_alive, http2 } => Ok(CaseResult::Idle(
            idle::run(
                gateway,
                args,
                IDLE_SOURCES,
                *kept_alive,
                http2.then_some(args.h2_streams),
            )
            .await?,
        )),
        Case::Ingest => Ok(CaseResult::Ingest(
            ingest::run(gateway, &args.database_url, args.ingest).await?,
        )),
        Case::Fleet => Ok(CaseResult::Fleet(Box::new(
            fleet::run(args, FLEET_SOURCES).await?,
        ))),
        Case::Writers => Ok(CaseResult::Writers(
            writers::run(&args.database_url, args.writers, args.writers_seconds).await?,
        )),
    }
}

/// Every case ran, and every load delivered every row once, in order.
fn all_clean(results: &Results) -> bool {
    results.cases.iter().all(|case| match case {
        CaseResult::Load(r) => {
            let stalled_clean = r.report.stalled.as_ref().is_none_or(|s| {
                s.deliveries.clean() && s.clients_failed == 0 && s.streams_ended == 0
            });
            r.report.gateway.clean() && r.report.clients_failed == 0 && stalled_clean
        }
        CaseResult::Ingest(r) => r.published == r.notifications,
        CaseResult::Fleet(r) => r.deliveries.clean() && r.failed == 0,
        CaseResult::Writers(r) => r.clean(),
        CaseResult::Idle(_) => true,
        CaseResult::Failed { .. } => false,
    })
}

fn memory_kib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("the tokio runtime starts")
}

fn fail(message: &str) -> ExitCode {
    eprintln!("pgsse-bench: {message}");
    ExitCode::from(2)
}
