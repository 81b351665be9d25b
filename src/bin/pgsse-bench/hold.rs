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

use crate::bench::clients::{Clients, Spec};
use crate::bench::tally::Deliveries;

/// Streams opened together before checking that all of them opened.
const BATCH: usize = 1000;

pub struct HoldArgs {
    pub gateway: SocketAddr,
    pub clients: usize,
    pub sources: usize,
    pub source_offset: usize,
    /// Whether each stream goes on a connection that served a request first.
    pub kept_alive: bool,
    /// Over HTTP/2: this many streams on each connection.
    pub http2: Option<usize>,
    /// The rows of the run the clients check, and the run's tag.
    pub rows: u64,
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

impl HoldArgs {
    pub fn parse(args: &[String]) -> Result<HoldArgs, String> {
        let mut parsed = HoldArgs {
            gateway: "127.0.0.1:8000".parse().expect("a valid address"),
            clients: 0,
            sources: 1,
            source_offset: 0,
            kept_alive: false,
            http2: None,
            rows: 0,
            tag: 0,
        };
        for pair in args.chunks(2) {
            let [flag, value] = pair else {
                return Err(format!("hold: {} needs a value", pair[0]));
            };
            let bad = || format!("hold: bad value {value:?} for {flag}");
            match flag.as_str() {
                "--gateway" => parsed.gateway = value.parse().map_err(|_| bad())?,
                "--clients" => parsed.clients = value.parse().map_err(|_| bad())?,
                "--sources" => parsed.sources = value.parse().map_err(|_| bad())?,
                "--source-offset" => parsed.source_offset = value.parse().map_err(|_| bad())?,
                "--kept-alive" => parsed.kept_alive = value == "1",
                "--h2-streams" => {
                    let n: usize = value.parse().map_err(|_| bad())?;
                    parsed.http2 = (n > 0).then_some(n);
                }
                "--rows" => parsed.rows = value.parse().map_err(|_| bad())?,
                "--tag" => parsed.tag = value.parse().map_err(|_| bad())?,
                _ => return Err(format!("hold: unknown flag {flag}")),
            }
        }
        Ok(parsed)
    }
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
