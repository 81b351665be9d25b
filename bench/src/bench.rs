//! The load generator's core: one load run, and the clients, writer and floor it is made of.
//!
//! One load run: open many SSE clients on a running gateway, start a bare `LISTEN` client on
//! the same database (the floor: what PostgreSQL alone costs), insert boards at a steady rate
//! over plain SQL, each board named after the time its INSERT was sent, and wait until every
//! client has every row. Each client checks what it received (nothing lost, nothing twice,
//! ids strictly increasing) and records each row's latency, receive time minus send time.
//!
//! A load may also have stalled clients, which stop reading after their stream opens. The others'
//! latency shows whether they held anyone up; once the others have every row, the stalled ones
//! read again and must then get every row too.
//!
//! - [`clients`]: the SSE clients, spread over loopback source addresses.
//! - [`sse`]: chunked-body and SSE parsing, cheap enough for half a million events a second.
//! - [`writer`]: the paced writer; [`floor`]: the bare `LISTEN` client.
//! - [`tally`]: what one client received, and latency percentiles.
//! - [`net`]: sockets without `tokio::io`'s extension traits, and the process's fd limit.

pub mod clients;
pub mod floor;
pub mod net;
pub mod sse;
pub mod tally;
pub mod writer;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use self::clients::{Clients, Spec};
use self::floor::Floor;
use self::tally::{Deliveries, Latency};

/// A load to put on the gateway.
#[derive(Clone, Debug)]
pub struct Load {
    pub clients: usize,
    /// Clients that read nothing while the rows are written (see [`clients`]), besides
    /// `clients`.
    pub stalled: usize,
    /// Rows inserted per second.
    pub rate: f64,
    /// How long the writer writes; it writes `rate * seconds` rows whatever it takes.
    pub seconds: f64,
    /// Loopback source addresses to spread clients over (127.0.0.2, …); 0 connects from the
    /// default address.
    pub sources: usize,
    /// The first source address used, counted from 127.0.0.2, so that runs can keep apart.
    pub source_offset: usize,
    /// Writer connections: more than one keeps the rate when an INSERT is slow.
    pub writers: usize,
    /// A run stops waiting for stragglers after this long without a new delivery.
    pub drain_quiet: Duration,
    /// Over HTTP/2: this many streams share each connection.
    pub http2: Option<usize>,
}

impl Load {
    pub fn new(clients: usize, rate: f64, seconds: f64) -> Load {
        Load {
            clients,
            stalled: 0,
            rate,
            seconds,
            sources: 8,
            source_offset: 0,
            writers: 8,
            drain_quiet: Duration::from_secs(5),
            http2: None,
        }
    }

    /// The rows the writer will insert.
    pub fn rows(&self) -> u64 {
        (self.rate * self.seconds).round().max(1.0) as u64
    }
}

/// Where the load goes.
#[derive(Clone, Debug)]
pub struct Target {
    /// The gateway's HTTP address.
    pub gateway: SocketAddr,
    /// The gateway's database, for the writer and the floor client.
    pub database_url: String,
}

/// Moments of a run at which the caller may take measurements of the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before the first client connects.
    Connecting,
    /// Every client is connected; the writer has not started.
    Connected,
    /// Every row has arrived everywhere (or the run gave up waiting).
    Drained,
}

/// What a load run measured.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub clients: usize,
    pub clients_held: usize,
    pub clients_failed: usize,
    /// Why clients failed to connect, with counts.
    pub failures: Vec<(String, usize)>,
    pub rows_written: u64,
    /// Rows per second the writer achieved (the target may be out of reach on a busy box).
    pub write_rate: f64,
    /// Every client must receive every row exactly once, in id order.
    pub gateway: Deliveries,
    pub gateway_latency: Option<Latency>,
    /// Each delivery's latency minus the bare LISTEN client's for the same row.
    pub added_latency: Option<Latency>,
    /// The bare LISTEN client's view of the same rows.
    pub floor: Deliveries,
    pub floor_latency: Option<Latency>,
    /// From the first INSERT until the last delivery (or giving up).
    pub seconds: f64,
    /// Clients whose stream the gateway ended during the run.
    pub streams_ended: usize,
    /// How the stalled clients fared, if there were any.
    pub stalled: Option<StalledReport>,
}

/// The stalled clients of a run, after they read again.
#[derive(Debug, Serialize)]
pub struct StalledReport {
    pub clients_held: usize,
    pub clients_failed: usize,
    /// Rows they had read when told to read again: none, since they stalled.
    pub received_before_resuming: u64,
    /// Like the other clients, they must end up with every row exactly once, in id order.
    pub deliveries: Deliveries,
    /// From resuming until they had every row (or the run gave up waiting).
    pub catch_up_seconds: f64,
    /// Stalled clients whose stream the gateway ended.
    pub streams_ended: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// Runs one load: connects the clients, writes the rows, waits for them to arrive, and reports.
/// `at` is called at each [`Phase`].
pub async fn run_load(
    target: &Target,
    load: &Load,
    mut at: impl FnMut(Phase),
) -> Result<LoadReport, BenchError> {
    let rows = load.rows();
    let tag = writer::fresh_tag();
    let writer = writer::Writer::connect(&target.database_url, load.writers, tag).await?;
    at(Phase::Connecting);
    let mut clients = Clients::new(Spec {
        gateway: target.gateway,
        sources: load.sources,
        source_offset: load.source_offset,
        rows,
        tag,
        stalled: false,
        kept_alive: false,
        http2: load.http2,
    });
    let mut stalled = Clients::new(Spec {
        gateway: target.gateway,
        sources: load.sources,
        source_offset: load.source_offset,
        rows,
        tag,
        stalled: true,
        kept_alive: false,
        http2: load.http2,
    });
    stalled.add(load.stalled).await;
    stalled.stall();
    clients.add(load.clients).await;
    let floor = Floor::listen(&target.database_url, rows, tag).await?;
    at(Phase::Connected);
    let started = Instant::now();
    let written = writer.write(rows, load.rate).await?;
    let write_seconds = started.elapsed().as_secs_f64();
    let expected = written * clients.held() as u64;
    let floor_wanted = (&floor, written);
    drain(&clients, expected, Some(floor_wanted), load.drain_quiet).await;
    let seconds = started.elapsed().as_secs_f64();
    at(Phase::Drained);
    let stalled = if load.stalled > 0 {
        Some(catch_up(stalled, written, load.drain_quiet).await)
    } else {
        None
    };
    let (floor, floor_latency, floor_by_row) = floor.finish(written).await;
    let held = clients.held();
    let failures = clients.failures();
    let summary = tally::summarize(clients.finish().await, written, &floor_by_row);
    Ok(LoadReport {
        clients: load.clients,
        clients_held: held,
        clients_failed: failures.iter().map(|(_, n)| n).sum(),
        failures,
        rows_written: written,
        write_rate: written as f64 / write_seconds.max(1e-9),
        gateway: summary.deliveries,
        gateway_latency: summary.latency,
        added_latency: summary.added,
        floor,
        floor_latency,
        seconds,
        streams_ended: summary.ended,
        stalled,
    })
}

/// Lets the stalled clients read again and waits until they have every one of the `rows`.
async fn catch_up(stalled: Clients, rows: u64, quiet: Duration) -> StalledReport {
    let received_before_resuming = stalled.delivered();
    let resumed = Instant::now();
    stalled.resume();
    drain(&stalled, rows * stalled.held() as u64, None, quiet).await;
    let catch_up_seconds = resumed.elapsed().as_secs_f64();
    let clients_held = stalled.held();
    let clients_failed = stalled.failures().iter().map(|(_, n)| n).sum();
    let summary = tally::summarize(stalled.finish().await, rows, &[]);
    StalledReport {
        clients_held,
        clients_failed,
        received_before_resuming,
        deliveries: summary.deliveries,
        catch_up_seconds,
        streams_ended: summary.ended,
    }
}

/// Waits until the clients have `expected` deliveries and the floor, if given, its number of
/// rows, or until nothing new arrived for `quiet`.
async fn drain(clients: &Clients, expected: u64, floor: Option<(&Floor, u64)>, quiet: Duration) {
    let mut last = (0, 0);
    let mut last_change = Instant::now();
    loop {
        let now = (clients.delivered(), floor.map_or(0, |(f, _)| f.delivered()));
        if now.0 >= expected && floor.is_none_or(|(_, rows)| now.1 >= rows) {
            return;
        }
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= quiet {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
