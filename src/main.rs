//! The `pgsse` binary: reads the configuration, runs the gateway until SIGINT or SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use pgsse::config::{ConfigError, LogFormat};
use pgsse::{App, Config};

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
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(ConfigError::Usage(err)) => err.exit(),
        Err(err) => {
            eprintln!("pgsse: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    match pgsse::app::raise_open_file_limit() {
        Ok(limit) => log::info!("open-file limit raised to {limit}"),
        Err(err) => log::warn!("cannot raise the open-file limit: {err}"),
    }
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

fn init_logging(config: &Config) {
    let mut logger = pretty_env_logger::formatted_timed_builder();
    logger.parse_filters(&config.log);
    if config.log_format == LogFormat::Json {
        logger.format(|out, record| {
            let line = serde_json::json!({
                "ts": out.timestamp_micros().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(out, "{line}")
        });
    }
    logger.init();
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
