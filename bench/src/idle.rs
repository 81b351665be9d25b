//! The idle case: hold as many streams as possible (up to `--idle-max`), find out what stopped
//! the count, take the gateway's memory per connection, then let them all go and watch whether
//! the memory comes back.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::args::Args;
use crate::gateway::Gateway;

/// Streams per helper process: below the usual 20,000 open-file limit, with room to spare.
const PER_PROCESS: usize = 15_000;
const SOURCES_PER_PROCESS: usize = 2;
/// Memory counts as returned once it is within this share of the growth above the baseline.
const RETURNED: f64 = 0.10;

#[derive(Debug, Serialize)]
pub struct IdleResult {
    /// Whether each stream was opened on a connection that served a request first.
    pub kept_alive: bool,
    /// Over HTTP/2: this many streams on each connection.
    pub http2: Option<usize>,
    pub target: usize,
    pub held: usize,
    pub stopped_because: String,
    pub seconds_to_connect: f64,
    pub gateway_open_files: Option<usize>,
    pub gateway_open_file_limit: Option<u64>,
    pub gateway_rss_before_kib: Option<u64>,
    pub gateway_rss_held_kib: Option<u64>,
    pub kib_per_connection: Option<f64>,
    /// The gateway's RSS, second by second after the clients left.
    pub rss_after_leaving_kib: Vec<u64>,
    /// Seconds after the clients left until RSS was back within 10% of the growth.
    pub rss_returned_after_seconds: Option<usize>,
    /// The gateway's count of open streams while they were held, and after they left.
    pub clients_connected_held: f64,
    pub clients_connected_after: f64,
}

pub async fn run(
    gateway: &mut Gateway,
    args: &Args,
    first_source: usize,
    kept_alive: bool,
    http2: Option<usize>,
) -> Result<IdleResult, String> {
    gateway
        .wait_for_clients(0.0, Duration::from_secs(30))
        .await?;
    let rss_before = gateway.rss_kib();
    let cap = gateway.metric("connections_max").await?;
    let started = Instant::now();
    let mut helpers: Vec<Child> = Vec::new();
    let (mut held, mut stop) = (0, None);
    while held < args.idle_max && stop.is_none() {
        let count = (args.idle_max - held).min(PER_PROCESS);
        let offset = first_source + helpers.len() * SOURCES_PER_PROCESS;
        let mut helper = spawn_helper(args, count, offset, kept_alive, http2)?;
        let stdout = helper.stdout.take().expect("stdout is piped");
        let progress = tokio::task::spawn_blocking(move || follow(stdout, held));
        let (got, reason) = progress.await.map_err(|e| e.to_string())?;
        helpers.push(helper);
        held += got;
        stop = reason;
    }
    let seconds_to_connect = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_held = gateway.rss_kib();
    let clients_connected_held = gateway.metric("clients_connected").await?;
    let files = gateway.files();
    let stopped_because = match (http2, stop) {
        // Streams over HTTP/2 take no connection of their own: MAX_STREAMS stops them.
        (Some(_), Some(reason)) => {
            format!("the gateway refused streams beyond {held} (MAX_STREAMS; {reason})")
        }
        (_, stop) => explain(stop, files, cap, held, args.idle_max),
    };
    eprintln!("idle: holding {held}; {stopped_because}");
    for helper in &mut helpers {
        drop(helper.stdin.take());
    }
    let waited = tokio::task::spawn_blocking(move || {
        for mut helper in helpers {
            let _ = helper.wait();
        }
    });
    waited.await.map_err(|e| e.to_string())?;
    let rss_after = watch_rss(gateway, args.idle_watch).await;
    let returned = returned_after(rss_before, rss_held, &rss_after);
    Ok(IdleResult {
        kept_alive,
        http2,
        target: args.idle_max,
        held,
        stopped_because,
        seconds_to_connect,
        gateway_open_files: files.map(|f| f.0),
        gateway_open_file_limit: files.map(|f| f.1),
        gateway_rss_before_kib: rss_before,
        gateway_rss_held_kib: rss_held,
        kib_per_connection: match (rss_before, rss_held) {
            (Some(b), Some(h)) if held > 0 => Some((h as f64 - b as f64) / held as f64),
            _ => None,
        },
        rss_after_leaving_kib: rss_after,
        rss_returned_after_seconds: returned,
        clients_connected_held,
        clients_connected_after: gateway.metric("clients_connected").await?,
    })
}

fn spawn_helper(
    args: &Args,
    count: usize,
    offset: usize,
    kept_alive: bool,
    http2: Option<usize>,
) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let mut command = Command::new(exe);
    command
        .args(["hold", "--gateway", &args.gateway.to_string()])
        .args(["--clients", &count.to_string()])
        .args(["--sources", &SOURCES_PER_PROCESS.to_string()])
        .args(["--source-offset", &offset.to_string()]);
    if kept_alive {
        command.arg("--kept-alive");
    }
    if let Some(streams) = http2 {
        command.args(["--h2-streams", &streams.to_string()]);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start a hold process: {e}"))
}

/// Reads a helper's progress until `done`: how many it holds, and why it stopped early if it did.
fn follow(stdout: ChildStdout, before: usize) -> (usize, Option<String>) {
    let mut stop = None;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(n) = line.strip_prefix("held ") {
            let held = before + n.parse::<usize>().unwrap_or(0);
            if held.is_multiple_of(5000) {
                eprintln!("idle: {held} connections held");
            }
        } else if let Some(reason) = line.strip_prefix("stop ") {
            stop = Some(reason.to_owned());
        } else if let Some(n) = line.strip_prefix("done ") {
            return (n.parse().unwrap_or(0), stop);
        }
    }
    (
        0,
        Some(stop.unwrap_or_else(|| "a hold process died".into())),
    )
}

fn explain(
    stop: Option<String>,
    files: Option<(usize, u64)>,
    cap: f64,
    held: usize,
    max: usize,
) -> String {
    let Some(reason) = stop else {
        return format!("reached the target of {max}");
    };
    // The bench's own /metrics connection is one of the gateway's connections too.
    if cap > 0.0 && held as f64 + 1.0 >= cap {
        let files = files.map_or(String::new(), |(open, limit)| {
            format!(", {open} of its {limit} file descriptors open")
        });
        return format!(
            "the gateway reached its connection cap of {cap} (MAX_CONNECTIONS, by default its \
             open-file limit less a reserve for database connections{files}); streams \
             beyond {held} were refused ({reason})"
        );
    }
    match files {
        Some((open, limit)) if open as u64 + 16 >= limit => format!(
            "the gateway ran out of file descriptors ({open} open, limit {limit}); \
             connections beyond {held} waited in its accept backlog ({reason})"
        ),
        _ => reason,
    }
}

/// The gateway's RSS each second for `seconds` seconds.
async fn watch_rss(gateway: &Gateway, seconds: u64) -> Vec<u64> {
    let mut samples = Vec::new();
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.extend(gateway.rss_kib());
    }
    samples
}

fn returned_after(before: Option<u64>, held: Option<u64>, after: &[u64]) -> Option<usize> {
    let (before, held) = (before? as f64, held? as f64);
    let allowed = before + (held - before).max(0.0) * RETURNED;
    after
        .iter()
        .position(|rss| *rss as f64 <= allowed)
        .map(|i| i + 1)
}
