//! Settings, parsed once from the environment. Every variable and its default lives here; `pgsse
//! --help` and the README's table are made from [`SETTINGS`].

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// One environment variable the gateway reads.
pub struct Setting {
    pub name: &'static str,
    /// The value used when the variable is unset; `None` when it must be set.
    pub default: Option<&'static str>,
    pub help: &'static str,
}

/// Every setting, in the order `--help` lists them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "DATABASE_URL",
        default: None,
        help: "PostgreSQL connection string (URL or key=value form)",
    },
    Setting {
        name: "BIND_ADDR",
        default: Some("127.0.0.1:8000"),
        help: "address and port the HTTP server listens on",
    },
    Setting {
        name: "KEEPALIVE_SECS",
        default: Some("15"),
        help: "seconds of silence after which an SSE stream gets a keep-alive comment",
    },
    Setting {
        name: "DB_POOL_SIZE",
        default: Some("16"),
        help: "connections in the pool used by the REST API and replays",
    },
    Setting {
        name: "BROADCAST_CAPACITY",
        default: Some("4096"),
        help: "events buffered for live clients before a slow one must catch up from history",
    },
    Setting {
        name: "RING_CAPACITY",
        default: Some("10000"),
        help: "recent events kept in memory for resuming clients",
    },
    Setting {
        name: "RETENTION_SECS",
        default: Some("604800"),
        help: "events older than this many seconds are pruned from pgsse.event",
    },
    Setting {
        name: "RETENTION_MAX_EVENTS",
        default: Some("1000000"),
        help: "at most this many events are kept in pgsse.event",
    },
    Setting {
        name: "PRUNE_INTERVAL_SECS",
        default: Some("60"),
        help: "seconds between retention runs",
    },
    Setting {
        name: "SLOW_CLIENT_SECS",
        default: Some("30"),
        help: "a client still behind the live stream after this many seconds is disconnected to resume",
    },
    Setting {
        name: "RUST_LOG",
        default: Some("info"),
        help: "log filter, e.g. debug or pgsse=debug,warp=info",
    },
];

/// The gateway's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub database: tokio_postgres::Config,
    pub bind_addr: SocketAddr,
    /// Silence on an SSE stream after which a keep-alive comment is written.
    pub keepalive: Duration,
    pub pool_size: usize,
    /// Capacity of the live fan-out channel; a client further behind than this catches up from
    /// the ring or the event table.
    pub broadcast_capacity: usize,
    /// How many recent events the in-memory ring keeps for replays.
    pub ring_capacity: usize,
    /// Events older than this are pruned.
    pub retention_age: Duration,
    /// At most this many events are kept.
    pub retention_events: i64,
    pub prune_interval: Duration,
    /// A client that has been behind the live stream this long and falls behind again is
    /// disconnected, so that it resumes from the table with Last-Event-ID.
    pub slow_client: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set: {help}")]
    Missing {
        name: &'static str,
        help: &'static str,
    },
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, which returns a variable's value if it is set.
    /// Tests pass a closure instead of mutating the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env(&lookup);
        Ok(Config {
            database: env.parse("DATABASE_URL", tokio_postgres::Config::from_str)?,
            bind_addr: env.parse("BIND_ADDR", SocketAddr::from_str)?,
            keepalive: Duration::from_secs(env.parse("KEEPALIVE_SECS", positive)?),
            pool_size: env.parse("DB_POOL_SIZE", positive)?,
            broadcast_capacity: env.parse("BROADCAST_CAPACITY", positive)?,
            ring_capacity: env.parse("RING_CAPACITY", positive)?,
            retention_age: Duration::from_secs(env.parse("RETENTION_SECS", positive)?),
            retention_events: env.parse("RETENTION_MAX_EVENTS", positive)?,
            prune_interval: Duration::from_secs(env.parse("PRUNE_INTERVAL_SECS", positive)?),
            slow_client: Duration::from_secs(env.parse("SLOW_CLIENT_SECS", positive)?),
        })
    }
}

/// Text for `pgsse --help`.
pub fn help() -> String {
    let mut text = String::from(
        "pgsse: streams rows inserted into PostgreSQL to browsers as Server-Sent Events.\n\n\
         Usage: pgsse [--help]\n\nSettings (environment variables):\n",
    );
    for s in SETTINGS {
        let default = s
            .default
            .map_or("required".into(), |d| format!("default {d}"));
        text.push_str(&format!("  {:<20} {} ({default})\n", s.name, s.help));
    }
    text
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// Parses variable `name`, or its default when unset or empty.
    fn parse<T, E: std::fmt::Display>(
        &self,
        name: &'static str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<T, ConfigError> {
        let setting = SETTINGS.iter().find(|s| s.name == name).expect("listed");
        let value = match (self.0)(name).filter(|v| !v.trim().is_empty()) {
            Some(v) => v,
            None => match setting.default {
                Some(d) => d.to_owned(),
                None => {
                    return Err(ConfigError::Missing {
                        name,
                        help: setting.help,
                    })
                }
            },
        };
        parse(value.trim()).map_err(|e| ConfigError::Invalid {
            name,
            // A connection string may hold a password; never echo it.
            value: if name == "DATABASE_URL" {
                "…".into()
            } else {
                value.clone()
            },
            reason: e.to_string(),
        })
    }
}

fn positive<T: FromStr + PartialOrd + Default>(value: &str) -> Result<T, String> {
    match value.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err("expected a positive whole number".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_apply_when_only_the_database_is_given() {
        let c = config(&[("DATABASE_URL", "postgres://u@localhost/db")]).unwrap();
        assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8000");
        assert_eq!(c.keepalive, Duration::from_secs(15));
        assert_eq!(c.database.get_dbname(), Some("db"));
    }

    #[test]
    fn a_missing_database_url_names_the_variable() {
        let err = config(&[]).unwrap_err().to_string();
        assert!(err.starts_with("DATABASE_URL is not set"), "{err}");
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_value() {
        let err = config(&[("DATABASE_URL", "postgres://x/y"), ("KEEPALIVE_SECS", "0")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "KEEPALIVE_SECS=\"0\" is invalid: expected a positive whole number"
        );
        let err = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("BIND_ADDR", "localhost"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("BIND_ADDR=\"localhost\" is invalid"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_database_url_does_not_echo_it() {
        let err = config(&[("DATABASE_URL", "postgres://u:secret@h:notaport/db")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("DATABASE_URL=") && !err.contains("secret"),
            "{err}"
        );
    }
}
