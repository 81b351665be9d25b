//! The `pgsse` binary: reads the configuration, runs the gateway until SIGINT or SIGTERM.

use std::process::ExitCode;

use pgsse::{config, App, Config};

// jemalloc, with a background thread that returns freed pages to the system about a second after
// they are freed: glibc's allocator kept the memory of 10,000 disconnected streams (250 MiB)
// indefinitely.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read by jemalloc itself at startup.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000\0";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            print!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!(
                "pgsse: unknown argument {other:?}; settings come from the environment, see --help"
            );
            return ExitCode::from(2);
        }
    }
    init_logging();
    match pgsse::app::raise_open_file_limit() {
        Ok(limit) => log::info!("open-file limit raised to {limit}"),
        Err(err) => log::warn!("cannot raise the open-file limit: {err}"),
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            log::error!("{err}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    runtime.block_on(async {
        match App::build(config).await {
            Ok(app) => {
                app.run_until_stopped(stop_signal()).await;
                ExitCode::SUCCESS
            }
            Err(err) => {
                log::error!("cannot start: {err}");
                ExitCode::FAILURE
            }
        }
    })
}

fn init_logging() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| config::DEFAULT_LOG.into());
    pretty_env_logger::formatted_timed_builder()
        .parse_filters(&filter)
        .init();
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM can be watched");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
