//! The fleet case: several gateway processes on one database (one process cannot hold more
//! streams than its open-file limit), as many streams as asked for spread over them, rows
//! written at a steady rate, and every stream checked. Also measured: what each gateway costs
//! the database, and how many notifying commits PostgreSQL takes a second on this machine.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::args::Args;
use crate::bench::tally::{Deliveries, Latency};
use crate::bench::writer::{self, Writer};
use crate::gateway::{self, Gateway};
use crate::hold::HoldResult;

/// Streams per helper process, below the usual 20,000 open-file limit.
const PER_PROCESS: usize = 15_000;
const SOURCES_PER_PROCESS: usize = 2;
/// Writer connections.
const WRITERS: usize = 8;

#[derive(Debug, Serialize)]
pub struct FleetResult {
    pub gateways: usize,
    pub target: usize,
    pub held: usize,
    pub failed: usize,
    pub rows: u64,
    pub write_rate: f64,
    pub deliveries: Deliveries,
    pub latency: Option<Latency>,
    pub streams_ended: usize,
    /// The gateways' RSS growth while the streams connected, per stream.
    pub kib_per_stream: Option<f64>,
    /// The gateways' CPU from the first row to the last delivery, per million deliveries.
    pub gateway_cpu_seconds_per_million: Option<f64>,
    /// PostgreSQL's connections from one gateway, on average.
    pub database_connections_per_gateway: f64,
    /// CPU of those connections' backends while the rows were written, per gateway, in
    /// seconds per second.
    pub database_cpu_per_gateway: Option<f64>,
    /// Notifying commits PostgreSQL took per second from 8 connections inserting as fast as
    /// they could.
    pub notifying_commits_per_second: f64,
}

pub async fn run(args: &Args, first_source: usize) -> Result<FleetResult, String> {
    let count = args.fleet_gateways.max(1);
    let mut gateways = Vec::new();
    for _ in 0..count {
        gateways.push(FleetGateway::start(args).await?);
    }
    let rss_before: Vec<Option<u64>> = gateways.iter().map(|g| g.watch.rss_kib()).collect();
    let per_gateway = args.fleet_clients.div_ceil(count);
    let tag = writer::fresh_tag();
    let rows = (args.fleet_rate * args.seconds).round().max(1.0) as u64;
    let mut helpers = Vec::new();
    let mut left = args.fleet_clients;
    for gateway in &gateways {
        let mut mine = per_gateway.min(left);
        left -= mine;
        while mine > 0 {
            let n = mine.min(PER_PROCESS);
            let offset = first_source + helpers.len() * SOURCES_PER_PROCESS;
            helpers.push(Helper::start(gateway.addr, n, offset, rows, tag)?);
            mine -= n;
        }
    }
    let mut held = 0;
    for helper in &mut helpers {
        held += helper.wait_held().await?;
    }
    eprintln!("fleet: {held} streams held on {count} gateways");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_held: Vec<Option<u64>> = gateways.iter().map(|g| g.watch.rss_kib()).collect();
    let backends = database_backends(&args.database_url).await?;
    let db_cpu_start = backends_cpu(&backends);
    let cpu_start = gateways_cpu(&gateways);
    let writer = Writer::connect(&args.database_url, WRITERS, tag)
        .await
        .map_err(|e| format!("fleet writer: {e}"))?;
    let started = Instant::now();
    let written = writer
        .write(rows, args.fleet_rate)
        .await
        .map_err(|e| format!("fleet writer: {e}"))?;
    let write_seconds = started.elapsed().as_secs_f64();
    let db_cpu = backends_cpu(&backends)
        .zip(db_cpu_start)
        .map(|(b, a)| b - a);
    // Every stream has every row once the gateways say they delivered that many.
    let expected = held as f64 * written as f64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut delivered = 0.0;
    while delivered < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        delivered = 0.0;
        for gateway in &mut gateways {
            delivered += gateway.watch.metric("frames_delivered_total").await?;
        }
    }
    let cpu = gateways_cpu(&gateways).zip(cpu_start).map(|(b, a)| b - a);
    let mut deliveries = Deliveries::default();
    let mut latencies = Vec::new();
    let mut ended = 0;
    for helper in helpers {
        let result = helper.finish().await?;
        deliveries.merge(&result.deliveries);
        ended += result.ended;
        latencies.extend(result.latencies_us.into_iter().map(i64::from));
    }
    let growth: f64 = rss_before
        .iter()
        .zip(&rss_held)
        .filter_map(|(b, h)| Some(h.as_ref()? - b.as_ref()?))
        .map(|kib| kib as f64)
        .sum();
    let per_gateway_now = backends.len() as f64 / (count + 1) as f64;
    let commits = notifying_commits(&args.database_url).await?;
    drop(gateways);
    Ok(FleetResult {
        gateways: count,
        target: args.fleet_clients,
        held,
        failed: args.fleet_clients - held,
        rows: written,
        write_rate: written as f64 / write_seconds,
        deliveries,
        latency: Latency::of(latencies),
        streams_ended: ended,
        kib_per_stream: (held > 0).then(|| growth / held as f64),
        gateway_cpu_seconds_per_million: cpu
            .filter(|_| delivered > 0.0)
            .map(|s| s * 1e6 / delivered),
        database_connections_per_gateway: per_gateway_now,
        // The bench's own gateway listens too: the backends are those of count + 1 gateways.
        database_cpu_per_gateway: db_cpu.map(|s| s / write_seconds / (count + 1) as f64),
        notifying_commits_per_second: commits,
    })
}

/// One gateway process of the fleet, on a port of its own.
struct FleetGateway {
    addr: SocketAddr,
    child: Child,
    watch: Gateway,
}

impl FleetGateway {
    async fn start(args: &Args) -> Result<FleetGateway, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let binary = exe.with_file_name("pgsse");
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?;
        let child = Command::new(&binary)
            .env("DATABASE_URL", &args.database_url)
            .env("BIND_ADDR", addr.to_string())
            .env("BROADCAST_CAPACITY", "16384")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let watch = Gateway::connect(addr, Some(child.id())).await?;
        Ok(FleetGateway { addr, child, watch })
    }
}

impl Drop for FleetGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `pgsse-bench hold` process checking the run's rows on its streams.
struct Helper {
    child: Child,
    stdout: Option<ChildStdout>,
    target: usize,
}

impl Helper {
    fn start(
        gateway: SocketAddr,
        clients: usize,
        offset: usize,
        rows: u64,
        tag: u32,
    ) -> Result<Helper, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let mut child = Command::new(exe)
            .args(["hold", "--gateway", &gateway.to_string()])
            .args(["--clients", &clients.to_string()])
            .args(["--sources", &SOURCES_PER_PROCESS.to_string()])
            .args(["--source-offset", &offset.to_string()])
            .args(["--rows", &rows.to_string(), "--tag", &tag.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start a hold process: {e}"))?;
        let stdout = child.stdout.take();
        Ok(Helper {
            child,
            stdout,
            target: clients,
        })
    }

    /// Waits until the helper has opened its streams; how many it holds.
    async fn wait_held(&mut self) -> Result<usize, String> {
        let stdout = self.stdout.take().ok_or("a hold process said nothing")?;
        let target = self.target;
        let (held, stdout) = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(n) = line.trim().strip_prefix("done ") {
                    return (n.parse().unwrap_or(0), reader.into_inner());
                }
                line.clear();
            }
            (0, reader.into_inner())
        })
        .await
        .map_err(|e| e.to_string())?;
        if held < target {
            eprintln!("fleet: a hold process held {held} of {target} streams");
        }
        self.stdout = Some(stdout);
        Ok(held)
    }

    /// Tells the helper to stop, and reads what its clients received.
    async fn finish(mut self) -> Result<HoldResult, String> {
        drop(self.child.stdin.take());
        let stdout = self.stdout.take().ok_or("a hold process said nothing")?;
        let result = tokio::task::spawn_blocking(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.map_err(|e| e.to_string())?;
                if let Some(json) = line.strip_prefix("result ") {
                    return serde_json::from_str::<HoldResult>(json).map_err(|e| e.to_string());
                }
            }
            Err("a hold process ended without its result".to_owned())
        })
        .await
        .map_err(|e| e.to_string())?;
        let _ = self.child.wait();
        result
    }
}

/// The PostgreSQL backends of every gateway on the database (their connections are named
/// `pgsse` and `pgsse listener`).
async fn database_backends(url: &str) -> Result<Vec<i32>, String> {
    let client = writer::connect(url).await.map_err(|e| e.to_string())?;
    let rows = client
        .query(
            "select pid from pg_stat_activity \
             where datname = current_database() and application_name like 'pgsse%'",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The backends' CPU seconds so far (those still there).
fn backends_cpu(pids: &[i32]) -> Option<f64> {
    let seconds = pids
        .iter()
        .filter_map(|pid| gateway::cpu_seconds(&pid.to_string()));
    Some(seconds.sum())
}

fn gateways_cpu(gateways: &[FleetGateway]) -> Option<f64> {
    gateways.iter().map(|g| g.watch.cpu_seconds()).sum()
}

/// Notifying commits per second: 8 connections insert 20,000 boards as fast as they can, each
/// in a transaction of its own, whose commit takes NOTIFY's lock.
async fn notifying_commits(url: &str) -> Result<f64, String> {
    let rows = 20_000;
    let writer = Writer::connect(url, WRITERS, writer::fresh_tag())
        .await
        .map_err(|e| format!("commit rate: {e}"))?;
    let started = Instant::now();
    let written = writer
        .write(rows, 1e9)
        .await
        .map_err(|e| format!("commit rate: {e}"))?;
    Ok(written as f64 / started.elapsed().as_secs_f64())
}
