//! `pgsse-bench hold`: a helper process that opens idle streams and holds them until its stdin
//! closes. The idle case runs several, because one process may hold only as many connections
//! as its open-file limit allows, and the point is to find the gateway's limit, not ours.
//!
//! It prints `held N` as it goes, then `done N` and, if it had to stop early, `stop REASON`
//! first.

use std::io::{Read, Write};
use std::net::SocketAddr;

use pgsse::bench::clients::{Clients, Spec};
use pgsse::bench::net::raise_fd_limit;

/// Streams opened together before checking that all of them opened.
const BATCH: usize = 1000;

pub struct HoldArgs {
    pub gateway: SocketAddr,
    pub clients: usize,
    pub sources: usize,
    pub source_offset: usize,
    /// Whether each stream goes on a connection that served a request first.
    pub kept_alive: bool,
}

impl HoldArgs {
    pub fn parse(args: &[String]) -> Result<HoldArgs, String> {
        let mut parsed = HoldArgs {
            gateway: "127.0.0.1:8000".parse().expect("a valid address"),
            clients: 0,
            sources: 1,
            source_offset: 0,
            kept_alive: false,
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
                _ => return Err(format!("hold: unknown flag {flag}")),
            }
        }
        Ok(parsed)
    }
}

pub async fn run(args: HoldArgs) {
    if let Err(err) = raise_fd_limit() {
        eprintln!("pgsse-bench hold: cannot raise the open-file limit: {err}");
    }
    let mut clients = Clients::new(Spec {
        gateway: args.gateway,
        sources: args.sources,
        source_offset: args.source_offset,
        rows: 0,
        tag: 0,
        stalled: false,
        kept_alive: args.kept_alive,
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
    clients.finish().await;
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
