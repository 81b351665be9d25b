//! The cases a run may have, as `--cases` names them, and the standard matrix.

use std::str::FromStr;

use crate::args::{count, positive};

/// The idle case runs first, on a gateway that has not served yet: its memory per connection is
/// then what a fresh gateway pays, and whether memory comes back is seen from a clean start.
///
/// The stalled case writes for 30 s: its stalled streams fill the gateway's send buffer
/// (`STREAM_SEND_BUFFER`) after about 9 s of events, so for most of the case the gateway's
/// writes to them wait.
pub const STANDARD_MATRIX: &str =
    "idle,idle-kept,idle-h2,1x500,1000x100,1000x100+100stalled:30s,1000x200,10000x10,1000x500,\
     10000x10/h2,1000x100+100stalled/h2:30s,ingest,fleet,writers";

#[derive(Clone, Debug, PartialEq)]
pub enum Case {
    Load {
        clients: usize,
        rate: f64,
        stalled: usize,
        /// Overrides `--seconds`.
        seconds: Option<f64>,
        /// Over HTTP/2, `--h2-streams` streams on each connection.
        http2: bool,
    },
    /// Idle streams; `kept_alive`: each on a connection that served a request first, as a
    /// browser's `EventSource` opens its stream on the connection that served the page.
    Idle {
        kept_alive: bool,
        /// Over HTTP/2, `--h2-streams` streams on each connection.
        http2: bool,
    },
    Ingest,
    Fleet,
    /// Commits/s of single-row inserts into tables with and without events.
    Writers,
}

impl FromStr for Case {
    type Err = String;

    fn from_str(text: &str) -> Result<Case, String> {
        let idle = |kept_alive, http2| Case::Idle { kept_alive, http2 };
        match text.trim() {
            "idle" => Ok(idle(false, false)),
            "idle-kept" => Ok(idle(true, false)),
            "idle-h2" => Ok(idle(false, true)),
            "ingest" => Ok(Case::Ingest),
            "fleet" => Ok(Case::Fleet),
            "writers" => Ok(Case::Writers),
            load => parse_load(load).ok_or_else(|| {
                "not a case: CLIENTSxRATE (optionally +Nstalled, /h2, :Ss, in that order), \
                 idle, idle-kept, idle-h2, ingest, fleet or writers"
                    .into()
            }),
        }
    }
}

/// `CLIENTSxRATE[+Nstalled][/h2][:Ss]`: counts and seconds above zero.
fn parse_load(text: &str) -> Option<Case> {
    let (load, seconds) = match text.split_once(':') {
        Some((load, seconds)) => (load, Some(positive(seconds.strip_suffix('s')?).ok()?)),
        None => (text, None),
    };
    let (load, http2) = match load.strip_suffix("/h2") {
        Some(load) => (load, true),
        None => (load, false),
    };
    let (load, stalled) = match load.split_once('+') {
        Some((load, stalled)) => (load, stalled.strip_suffix("stalled")?.parse().ok()?),
        None => (load, 0),
    };
    let (clients, rate) = load.split_once('x')?;
    Some(Case::Load {
        clients: count(clients).ok()?,
        rate: positive(rate).ok()?,
        stalled,
        seconds,
        http2,
    })
}

impl Case {
    pub fn name(&self) -> String {
        match self {
            Case::Load {
                clients,
                rate,
                stalled,
                seconds,
                http2,
            } => {
                let mut name = match clients {
                    1 => format!("1 client, {rate} rows/s"),
                    n => format!("{n} clients, {rate} rows/s"),
                };
                if *stalled > 0 {
                    name += &format!(", +{stalled} stalled");
                }
                if *http2 {
                    name += ", HTTP/2";
                }
                if let Some(seconds) = seconds {
                    name += &format!(", {seconds} s");
                }
                name
            }
            Case::Idle { http2: true, .. } => "idle streams, HTTP/2".into(),
            Case::Idle {
                kept_alive: false, ..
            } => "idle connections".into(),
            Case::Idle {
                kept_alive: true, ..
            } => "idle connections, kept alive".into(),
            Case::Ingest => "ingest".into(),
            Case::Fleet => "fleet".into(),
            Case::Writers => "writers".into(),
        }
    }
}
