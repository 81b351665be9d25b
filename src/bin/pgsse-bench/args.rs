//! Command-line flags. Every flag has a default that suits `make bench`.

use std::net::SocketAddr;
use std::path::PathBuf;

pub const USAGE: &str = "\
pgsse-bench: puts a running pgsse gateway under load and prints what it measured.

usage: pgsse-bench [flags]

  --gateway ADDR        the gateway's HTTP address (127.0.0.1:8000)
  --database-url URL    the gateway's database (default: $DATABASE_URL)
  --gateway-pid PID     the gateway's process, for RSS and CPU from /proc (optional)
  --cases LIST          comma-separated cases, run in order (default: the standard matrix)
                        CLIENTSxRATE  a load: that many clients, rows inserted per second
                        CLIENTSxRATE+Nstalled  the same with N more clients that stop
                                      reading (4 KiB receive buffers) until the others have
                                      every row, then must catch up
                        …:Ss          a load that writes for S seconds instead of --seconds
                        …/h2          a load whose clients speak HTTP/2 (prior knowledge),
                                      --h2-streams streams on each connection; stalled ones
                                      stop reading their stream and their connection
                        idle          hold as many idle connections as possible
                        idle-kept     the same, each stream on a connection that served a
                                      request first
                        idle-h2       the same with streams over HTTP/2, --h2-streams on
                                      each connection
                        fleet         --fleet-gateways gateway processes on one database,
                                      --fleet-clients streams over them, --fleet-rate rows/s;
                                      and how many notifying commits PostgreSQL takes a second
                        ingest        a burst of events recorded in one transaction
  --seconds S           how long each load writes (10)
  --writers N           connections the writer inserts over (8)
  --idle-max N          the idle case stops at this many connections (100000)
  --idle-watch S        seconds to watch RSS after the idle clients leave (60)
  --ingest N            events the ingest case records (300000)
  --fleet-gateways N    gateway processes of the fleet case (6)
  --fleet-clients N     streams of the fleet case, over all its gateways (100000)
  --fleet-rate R        rows per second of the fleet case (1), written for --seconds
  --h2-streams N        streams on each HTTP/2 connection of a …/h2 case (100)
  --json PATH           where to write the results (target/bench/results.json)
";

/// The idle case runs first, on a gateway that has not served yet: its memory per connection is
/// then what a fresh gateway pays, and whether memory comes back is seen from a clean start.
///
/// The stalled case writes for 30 s: its stalled streams fill the gateway's send buffer
/// (`STREAM_SEND_BUFFER`) after about 9 s of events, so for most of the case the gateway's
/// writes to them wait.
pub const STANDARD_MATRIX: &str =
    "idle,idle-kept,idle-h2,1x500,1000x100,1000x100+100stalled:30s,1000x200,10000x10,1000x500,\
     10000x10/h2,1000x100+100stalled/h2:30s,ingest,fleet";

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
}

impl Case {
    fn parse(text: &str) -> Result<Case, String> {
        match text {
            "idle" => Ok(Case::Idle {
                kept_alive: false,
                http2: false,
            }),
            "idle-kept" => Ok(Case::Idle {
                kept_alive: true,
                http2: false,
            }),
            "idle-h2" => Ok(Case::Idle {
                kept_alive: false,
                http2: true,
            }),
            "ingest" => Ok(Case::Ingest),
            "fleet" => Ok(Case::Fleet),
            _ => {
                let bad = || {
                    format!(
                        "--cases: {text:?} is not CLIENTSxRATE, CLIENTSxRATE+Nstalled (either \
                         with /h2, :Ss or both), idle, idle-kept, idle-h2, ingest or fleet"
                    )
                };
                let (load, seconds) = match text.split_once(':') {
                    Some((load, seconds)) => {
                        let seconds = seconds.strip_suffix('s').ok_or_else(bad)?;
                        let seconds: f64 = seconds.parse().map_err(|_| bad())?;
                        if seconds.is_nan() || seconds <= 0.0 {
                            return Err(bad());
                        }
                        (load, Some(seconds))
                    }
                    None => (text, None),
                };
                let (load, http2) = match load.strip_suffix("/h2") {
                    Some(load) => (load, true),
                    None => (load, false),
                };
                let (load, stalled) = match load.split_once('+') {
                    Some((load, stalled)) => {
                        let n = stalled.strip_suffix("stalled").ok_or_else(bad)?;
                        (load, n.parse().map_err(|_| bad())?)
                    }
                    None => (load, 0),
                };
                let (clients, rate) = load.split_once('x').ok_or_else(bad)?;
                let clients = clients.parse().map_err(|_| bad())?;
                let rate: f64 = rate.parse().map_err(|_| bad())?;
                if clients == 0 || rate <= 0.0 {
                    return Err(bad());
                }
                Ok(Case::Load {
                    clients,
                    rate,
                    stalled,
                    seconds,
                    http2,
                })
            }
        }
    }

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
        }
    }
}

#[derive(Clone, Debug)]
pub struct Args {
    pub gateway: SocketAddr,
    pub database_url: String,
    pub gateway_pid: Option<u32>,
    pub cases: Vec<Case>,
    pub seconds: f64,
    pub writers: usize,
    pub idle_max: usize,
    pub idle_watch: u64,
    pub ingest: i64,
    pub fleet_gateways: usize,
    pub fleet_clients: usize,
    pub fleet_rate: f64,
    pub h2_streams: usize,
    pub json: PathBuf,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut parsed = Args {
            gateway: "127.0.0.1:8000".parse().expect("a valid address"),
            database_url: std::env::var("DATABASE_URL").unwrap_or_default(),
            gateway_pid: None,
            cases: cases(STANDARD_MATRIX)?,
            seconds: 10.0,
            writers: 8,
            idle_max: 100_000,
            idle_watch: 60,
            ingest: 300_000,
            fleet_gateways: 6,
            fleet_clients: 100_000,
            fleet_rate: 1.0,
            h2_streams: 100,
            json: PathBuf::from("target/bench/results.json"),
        };
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            let value = rest
                .next()
                .ok_or_else(|| format!("{flag} needs a value; see --help"))?;
            let number = |what: &str| format!("{flag}: {value:?} is not {what}");
            match flag.as_str() {
                "--gateway" => parsed.gateway = value.parse().map_err(|_| number("an address"))?,
                "--database-url" => parsed.database_url = value.clone(),
                "--gateway-pid" => {
                    parsed.gateway_pid = Some(value.parse().map_err(|_| number("a pid"))?)
                }
                "--cases" => parsed.cases = cases(value)?,
                "--seconds" => parsed.seconds = value.parse().map_err(|_| number("a number"))?,
                "--writers" => parsed.writers = value.parse().map_err(|_| number("a count"))?,
                "--idle-max" => parsed.idle_max = value.parse().map_err(|_| number("a count"))?,
                "--idle-watch" => {
                    parsed.idle_watch = value.parse().map_err(|_| number("seconds"))?
                }
                "--ingest" => parsed.ingest = value.parse().map_err(|_| number("a count"))?,
                "--fleet-gateways" => {
                    parsed.fleet_gateways = value.parse().map_err(|_| number("a count"))?
                }
                "--fleet-clients" => {
                    parsed.fleet_clients = value.parse().map_err(|_| number("a count"))?
                }
                "--fleet-rate" => {
                    parsed.fleet_rate = value.parse().map_err(|_| number("a rate"))?
                }
                "--h2-streams" => {
                    parsed.h2_streams = value.parse().map_err(|_| number("a count"))?;
                    if parsed.h2_streams == 0 {
                        return Err("--h2-streams: at least 1".into());
                    }
                }
                "--json" => parsed.json = PathBuf::from(value),
                _ => return Err(format!("unknown flag {flag}; see --help")),
            }
        }
        if parsed.database_url.is_empty() {
            return Err("set --database-url or DATABASE_URL".into());
        }
        Ok(parsed)
    }
}

fn cases(list: &str) -> Result<Vec<Case>, String> {
    list.split(',')
        .filter(|c| !c.trim().is_empty())
        .map(|c| Case::parse(c.trim()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_matrix_parses() {
        let matrix = cases(STANDARD_MATRIX).unwrap();
        assert_eq!(
            matrix[4],
            Case::Load {
                clients: 1000,
                rate: 100.0,
                stalled: 0,
                seconds: None,
                http2: false,
            }
        );
        assert_eq!(
            matrix[5],
            Case::Load {
                clients: 1000,
                rate: 100.0,
                stalled: 100,
                seconds: Some(30.0),
                http2: false,
            }
        );
        assert_eq!(
            matrix[5].name(),
            "1000 clients, 100 rows/s, +100 stalled, 30 s"
        );
        assert_eq!(
            (&matrix[0], &matrix[1], &matrix[11]),
            (
                &Case::Idle {
                    kept_alive: false,
                    http2: false
                },
                &Case::Idle {
                    kept_alive: true,
                    http2: false
                },
                &Case::Ingest
            )
        );
        assert_eq!(
            cases("10x5:2.5s").unwrap()[0].name(),
            "10 clients, 5 rows/s, 2.5 s"
        );
        assert_eq!(
            cases("1000x100+100stalled/h2:30s").unwrap()[0],
            Case::Load {
                clients: 1000,
                rate: 100.0,
                stalled: 100,
                seconds: Some(30.0),
                http2: true,
            }
        );
        assert_eq!(matrix[9].name(), "10000 clients, 10 rows/s, HTTP/2");
        for bad in [
            "10x5/h3",
            "10xfast",
            "10x5+3",
            "10x5+stalled",
            "10x5+-1stalled",
            "10x5:0s",
            "10x5:3",
        ] {
            assert!(cases(bad).is_err(), "{bad}");
        }
    }
}
