//! Command-line flags, parsed by clap: each flag's name, default and help on its field. Every
//! default suits `make bench`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::builder::NonEmptyStringValueParser;
use clap::{Parser, Subcommand};

use crate::case::{Case, STANDARD_MATRIX};
use crate::hold::HoldArgs;

/// Puts a running pgsse gateway under load and prints what it measured.
#[derive(Debug, Parser)]
// `hold` takes none of the run's flags and needs no database; a negative number is a value (to
// be refused as one), not a flag.
#[command(
    name = "pgsse-bench",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    allow_negative_numbers = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The run's flags; clap fills them in whenever there is no subcommand, since it then
    /// requires `--database-url`.
    #[command(flatten)]
    pub run: Option<Args>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Not for people: the helper process that the idle and fleet cases start, which opens
    /// streams and holds them until its stdin closes.
    Hold(HoldArgs),
}

/// A run of cases against one gateway.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The gateway's HTTP address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    pub gateway: SocketAddr,
    /// The gateway's database, which the writer inserts into and the bare LISTEN client listens
    /// on.
    #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true,
          value_parser = NonEmptyStringValueParser::new())]
    pub database_url: String,
    /// The gateway's process, for its memory and CPU time from /proc.
    #[arg(long, value_name = "PID")]
    pub gateway_pid: Option<u32>,
    /// Comma-separated cases, run in order:
    ///
    ///   CLIENTSxRATE   a load: that many clients, rows inserted per second
    ///   …+Nstalled     N more clients that stop reading (4 KiB receive buffers) until the
    ///                  others have every row, then must catch up
    ///   …/h2           the clients speak HTTP/2 (prior knowledge), --h2-streams streams on
    ///                  each connection; stalled ones stop reading their stream and their
    ///                  connection
    ///   …:Ss           the load writes for S seconds instead of --seconds
    ///   idle           hold as many idle connections as possible
    ///   idle-kept      the same, each stream on a connection that served a request first
    ///   idle-h2        the same with streams over HTTP/2, --h2-streams on each connection
    ///   fleet          --fleet-gateways gateway processes on one database, --fleet-clients
    ///                  streams over them, --fleet-rate rows/s; and how many notifying
    ///                  commits PostgreSQL takes a second
    ///   ingest         a burst of events recorded in one transaction
    ///   writers        --writers connections insert one row per transaction as fast as
    ///                  they can for --writers-seconds into a table without trigger, one
    ///                  whose trigger calls pg_notify, a watched one and board, with
    ///                  synchronous_commit on and off: commits/s of each
    ///
    /// The suffixes go in this order: 1000x100+100stalled/h2:30s.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = STANDARD_MATRIX,
          verbatim_doc_comment)]
    pub cases: Vec<Case>,
    /// How long each load writes, in seconds.
    #[arg(long, value_name = "S", default_value_t = 10.0, value_parser = positive)]
    pub seconds: f64,
    /// Connections the writer inserts over.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = count::<usize>)]
    pub writers: usize,
    /// How long the writers case inserts into each table with each setting, in seconds, after
    /// a second of warm-up.
    #[arg(long, value_name = "S", default_value_t = 4.0, value_parser = positive)]
    pub writers_seconds: f64,
    /// The idle cases stop at this many connections.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = count::<usize>)]
    pub idle_max: usize,
    /// Seconds to watch the gateway's memory after the idle clients leave.
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub idle_watch: u64,
    /// Events the ingest case records.
    #[arg(long, value_name = "N", default_value_t = 300_000,
          value_parser = count::<i64>)]
    pub ingest: i64,
    /// Gateway processes of the fleet case.
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = count::<usize>)]
    pub fleet_gateways: usize,
    /// Streams of the fleet case, over all its gateways.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = count::<usize>)]
    pub fleet_clients: usize,
    /// Rows per second of the fleet case, written for --seconds.
    #[arg(long, value_name = "R", default_value_t = 1.0, value_parser = positive)]
    pub fleet_rate: f64,
    /// Streams on each HTTP/2 connection of a …/h2 or idle-h2 case.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = count::<usize>)]
    pub h2_streams: usize,
    /// Where to write the results, as JSON.
    #[arg(long, value_name = "PATH", default_value = "target/bench/results.json")]
    pub json: PathBuf,
}

/// A whole number above zero, such as a count.
pub fn count<T: FromStr + Default + PartialOrd>(text: &str) -> Result<T, String> {
    match text.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err("not a whole number above 0".into()),
    }
}

/// A finite number above zero, such as seconds or a rate.
pub fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err("not a number above 0".into()),
    }
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    use super::*;

    /// Parses `argv` after the program's name and a database URL.
    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        let head = ["pgsse-bench", "--database-url", "postgres://db"];
        Cli::try_parse_from(head.iter().chain(argv)).map(|cli| cli.run.expect("the run's flags"))
    }

    fn cases(list: &str) -> Result<Vec<Case>, clap::Error> {
        parse(&["--cases", list]).map(|args| args.cases)
    }

    #[test]
    fn clap_accepts_the_definition() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_standard_matrix_is_the_default_and_parses() {
        let matrix = parse(&[]).unwrap().cases;
        assert_eq!(matrix, cases(STANDARD_MATRIX).unwrap());
        assert_eq!(matrix.len(), 14);
        assert_eq!(matrix[13], Case::Writers);
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
            let err = cases(&format!("1x500,{bad}")).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad}");
            assert!(err.to_string().contains(&format!("'{bad}'")), "{err}");
        }
    }

    #[test]
    fn the_makefiles_invocation_parses() {
        let args = parse(&[
            "--gateway",
            "127.0.0.1:8099",
            "--gateway-pid",
            "4242",
            "--json",
            "target/bench/base-1.json",
            "--cases",
            "1000x100,1x500",
            "--seconds",
            "30",
        ])
        .unwrap();
        assert_eq!(args.gateway, "127.0.0.1:8099".parse().unwrap());
        assert_eq!(args.database_url, "postgres://db");
        assert_eq!(args.gateway_pid, Some(4242));
        assert_eq!(args.json, PathBuf::from("target/bench/base-1.json"));
        assert_eq!(args.cases.len(), 2);
        assert_eq!(args.cases[1].name(), "1 client, 500 rows/s");
        assert_eq!(args.seconds, 30.0);
    }

    #[test]
    fn counts_seconds_and_rates_must_be_above_zero() {
        for (flag, value) in [
            ("--h2-streams", "0"),
            ("--writers", "0"),
            ("--seconds", "0"),
            ("--seconds", "-1"),
            ("--seconds", "inf"),
            ("--writers-seconds", "0"),
            ("--fleet-rate", "NaN"),
            ("--ingest", "0"),
        ] {
            let err = parse(&[flag, value]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{flag} {value}");
            assert!(err.to_string().contains(flag), "{err}");
        }
    }

    #[test]
    fn an_unknown_flag_is_refused() {
        let err = parse(&["--clients", "10"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn hold_takes_the_flags_the_idle_and_fleet_cases_pass_and_no_database() {
        let argv = [
            "pgsse-bench",
            "hold",
            "--gateway",
            "127.0.0.1:8099",
            "--clients",
            "15000",
            "--sources",
            "2",
            "--source-offset",
            "1002",
            "--kept-alive",
            "--h2-streams",
            "100",
            "--rows",
            "300",
            "--tag",
            "77",
        ];
        let Some(Command::Hold(hold)) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not the hold helper");
        };
        assert_eq!(hold.gateway, "127.0.0.1:8099".parse().unwrap());
        assert_eq!(
            (hold.clients, hold.sources, hold.source_offset),
            (15000, 2, 1002)
        );
        assert!(hold.kept_alive);
        assert_eq!(hold.http2, Some(100));
        assert_eq!((hold.rows, hold.tag), (300, 77));
        let plain = ["pgsse-bench", "hold", "--clients", "5"];
        let Some(Command::Hold(hold)) = Cli::try_parse_from(plain).unwrap().command else {
            panic!("not the hold helper");
        };
        assert!(!hold.kept_alive);
        assert_eq!((hold.http2, hold.rows), (None, 0));
    }
}
