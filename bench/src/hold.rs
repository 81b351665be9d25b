//! `pgsse-bench hold`: a helper process that opens streams and holds them until its stdin
//! closes. The idle and fleet cases run several, because one process may hold only as many
//! connections as its open-file limit allows, and the point is to find the gateway's limit, not
//! ours. With `--rows` and `--tag` its clients check the rows of a run as a load's do.
//!
//! It prints `held N` as it goes, then `done N` and, if it had to stop early, `stop REASON`
//! first; once its stdin closes, `result {…}`: what its clients received (a [`HoldResult`]).

use std::io::{Read, Write};
use std::net::SocketAddr;

use pgsse::app::raise_open_file_limit;
use serde::{Deserialize, Serialize};

use crate::args::count;
use crate::bench::clients::{Clients, Spec};
use crate::bench::tally::Deliveries;

/// Streams opened together before checking that all of them opened.
const BATCH: usize = 1000;

/// What a helper opens; the idle and fleet cases pass every flag.
#[derive(Clone, Debug, clap::Args)]
pub struct HoldArgs {
    /// The gateway's HTTP address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    pub gateway: SocketAddr,
    /// Streams to open.
    #[arg(long, value_name = "N")]
    pub clients: usize,
    /// Loopback source addresses to spread the streams over (127.0.0.2, …); 0 connects from
    /// the default address.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub sources: usize,
    /// The first source address used, counted from 127.0.0.2.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub source_offset: usize,
    /// Open each stream on a connection that served a request first.
    #[arg(long)]
    pub kept_alive: bool,
    /// Speak HTTP/2, with this many streams on each connection.
    #[arg(long = "h2-streams", value_name = "N", value_parser = count::<usize>)]
    pub http2: Option<usize>,
    /// The rows of the run the clients check (none without it).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rows: u64,
    /// The run's tag, which the rows' names carry.
    #[arg(long, value_name = "TAG", default_value_t = 0)]
    pub tag: u32,
}

/// What a helper's clients received, printed as JSON once they are done.
#[derive(Debug, Serialize, Deserialize)]
pub struct HoldResult {
    pub deliveries: Deliveries,
    /// Every row's latency at every client, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Clients whose stream ended before they were told to stop.
    pub ended: usize,
}

pub async fn run(args: HoldArgs) {
    if let Err(err) = raise_open_file_limit() {
        eprintln!("pgsse-bench hold: cannot raise the open-file limit: {err}");
    }
    let mut clients = Clients::new(Spec {
        gateway: args.gateway,
        sources: args.sources,
        source_offset: args.source_offset,
        rows: args.rows,
        tag: args.tag,
        stalled: false,
        kept_alive: args.kept_alive,
        http2: args.http2,
    });
    let mut held = 0;
    while held < args.clients {
        let batch = (args.clients - held).min(BATCH);
        let opened = clients.add(batch).await;
        held += opened;
        say(&format!("held {held}"));
        if opened < batch {
            let failures = clients.failures();
            let (reason, _) = failures.iter().max_by_key(|(_, n)| *n).expect("a failure");
            say(&format!("stop {reason}"));
            break;
        }
    }
    say(&format!("done {held}"));
    // Hold until the parent closes our stdin (or exits).
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
    let tallies = clients.finish().await;
    let mut result = HoldResult {
        deliveries: Deliveries::default(),
        latencies_us: Vec::new(),
        ended: 0,
    };
    for tally in &tallies {
        result.deliveries.add(tally, args.rows);
        result.ended += usize::from(tally.ended);
        result
            .latencies_us
            .extend(tally.samples.iter().map(|s| s.latency_us));
    }
    let json = serde_json::to_string(&result).expect("a result serialises");
    say(&format!("result {json}"));
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
