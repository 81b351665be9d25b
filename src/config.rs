//! Settings, parsed once from the environment. Every variable and its default lives here; `pgsse
//! --help` and the README's table are made from [`SETTINGS`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use crate::auth::jwks::Source as JwksSource;

/// One environment variable the gateway reads.
pub struct Setting {
    pub name: &'static str,
    /// The value used when the variable is unset; `None` when it must be set.
    pub default: Option<&'static str>,
    pub help: &'static str,
}

/// The longest COALESCE_WINDOW_MS: an event waits no longer than a second whatever the setting.
const MAX_COALESCE_WINDOW_MS: u64 = 1000;

/// The most clock skew AUTH_LEEWAY_SECS may allow: more would keep expired tokens alive.
const MAX_LEEWAY_SECS: u64 = 300;

/// The log filter when RUST_LOG is unset.
pub const DEFAULT_LOG: &str = "info";

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
        name: "TLS_CERT_FILE",
        default: Some(""),
        help: "PEM certificate chain; with TLS_KEY_FILE, serves HTTPS with HTTP/2 and HTTP/1.1 \
               (unset: plain HTTP)",
    },
    Setting {
        name: "TLS_KEY_FILE",
        default: Some(""),
        help: "PEM private key of TLS_CERT_FILE's certificate",
    },
    Setting {
        name: "CORS_ORIGINS",
        default: Some(""),
        help: "pages on these origins (comma-separated, e.g. https://app.example.com) may open \
               streams and call the API, with cookies; * lets any origin in, without cookies \
               (unset: only the gateway's own pages)",
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
        name: "MAX_CONNECTIONS",
        default: Some(""),
        help: "HTTP connections (streams included) held at once; beyond it stream requests get \
               503 and 16 more connections answer anything else (unset: the open-file limit \
               minus DB_POOL_SIZE minus 64)",
    },
    Setting {
        name: "MAX_STREAMS",
        default: Some(""),
        help: "event streams open at once, HTTP/1.1 and HTTP/2 alike; beyond it a stream request \
               gets 503 with Retry-After (unset: MAX_CONNECTIONS)",
    },
    Setting {
        name: "HEADER_READ_TIMEOUT_SECS",
        default: Some("15"),
        help: "seconds a client has to send a request head, on a new connection and between \
               requests on a kept-alive HTTP/1.1 one; then its connection is closed",
    },
    Setting {
        name: "BODY_READ_TIMEOUT_SECS",
        default: Some("30"),
        help: "seconds a client has to send a request body to the API; then it gets 408",
    },
    Setting {
        name: "IDLE_TIMEOUT_SECS",
        default: Some("120"),
        help: "a connection on which no byte has moved either way for this long is closed: an \
               HTTP/2 connection with nothing to say, a stream whose client stopped reading",
    },
    Setting {
        name: "SHUTDOWN_GRACE_SECS",
        default: Some("10"),
        help: "on SIGTERM, seconds the open streams and requests have to finish once told to; \
               then what is left is closed and the gateway exits",
    },
    Setting {
        name: "BROADCAST_CAPACITY",
        default: Some("4096"),
        help: "events buffered for live clients before a slow one must catch up from history",
    },
    Setting {
        name: "COALESCE_WINDOW_MS",
        default: Some("10"),
        help: "when events come faster than this, each waits up to this many milliseconds to go \
               to the streams with the others (at most 10 µs per open stream, so few streams get \
               every event at once); an event after a quiet spell goes at once (0: every event \
               on its own; at most 1000)",
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
        name: "STREAM_SEND_BUFFER",
        default: Some("65536"),
        help: "kernel send buffer (SO_SNDBUF) of each event stream's socket, in bytes, and over \
               HTTP/2 what may wait for each stream: what a client that stops reading can hold \
               before its stream waits and later catches up from memory or the table (0: the \
               kernel's own sizing, up to megabytes per stream, and h2's 400 KB per stream)",
    },
    Setting {
        name: "SLOW_CLIENT_SECS",
        default: Some("30"),
        help: "a client still behind the live stream after this many seconds is disconnected to resume",
    },
    Setting {
        name: "AUTH_JWT_SECRET",
        default: Some(""),
        help: "turns authentication on: HS256 secret (32+ characters) that signs access tokens",
    },
    Setting {
        name: "AUTH_JWKS_URL",
        default: Some(""),
        help: "turns authentication on: the identity provider's JWKS (https://, or http:// to a \
               loopback address), whose keys check RS256, ES256 and EdDSA tokens; fetched at \
               start, every AUTH_JWKS_REFRESH_SECS, and for a token with an unknown key (at most \
               every 30 s)",
    },
    Setting {
        name: "AUTH_JWKS_FILE",
        default: Some(""),
        help: "instead of AUTH_JWKS_URL: a JWKS file, read at start and as often",
    },
    Setting {
        name: "AUTH_JWKS_REFRESH_SECS",
        default: Some("900"),
        help: "seconds between two readings of the JWKS",
    },
    Setting {
        name: "AUTH_ISSUER",
        default: Some(""),
        help: "tokens must name this issuer (iss), e.g. https://idp.example.com/realms/main",
    },
    Setting {
        name: "AUTH_AUDIENCE",
        default: Some(""),
        help: "tokens must name this audience (aud)",
    },
    Setting {
        name: "AUTH_LEEWAY_SECS",
        default: Some("30"),
        help: "seconds of clock skew allowed on a token's exp and nbf (at most 300)",
    },
    Setting {
        name: "MAX_STREAMS_PER_USER",
        default: Some("10"),
        help: "streams one user may hold; beyond it the oldest is closed",
    },
    Setting {
        name: "DEMO_TOKENS",
        default: Some("0"),
        help: "1 enables POST /api/demo/token, which signs anyone in (demos only; needs AUTH_JWT_SECRET)",
    },
    Setting {
        name: "RUST_LOG",
        default: Some(DEFAULT_LOG),
        help: "log filter, e.g. debug or pgsse=debug,warp=info; at info every request gets an \
               access-log line (pgsse::access=warn leaves them out)",
    },
];

/// The gateway's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub database: tokio_postgres::Config,
    pub bind_addr: SocketAddr,
    /// The certificate chain and key files for HTTPS; `None` serves plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Which other origins' pages may use the gateway (CORS).
    pub cors: CorsOrigins,
    /// Silence on an SSE stream after which a keep-alive comment is written.
    pub keepalive: Duration,
    pub pool_size: usize,
    /// Connections served at once; `None` derives it from the open-file limit.
    pub max_connections: Option<usize>,
    /// Streams open at once; `None` is the connection cap.
    pub max_streams: Option<usize>,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    /// A connection with no bytes moving either way for this long is closed.
    pub idle_timeout: Duration,
    /// How long, after SIGTERM, streams and requests have to finish before they are cut.
    pub shutdown_grace: Duration,
    /// Capacity of the live fan-out channel; a client further behind than this catches up from
    /// the ring or the event table.
    pub broadcast_capacity: usize,
    /// The longest an event waits to go to the streams together with others.
    pub coalesce_window: Duration,
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
    /// SO_SNDBUF for stream sockets; `None` leaves the kernel's sizing.
    pub stream_send_buffer: Option<usize>,
    /// The HS256 secret.
    pub auth_secret: Option<String>,
    /// Where the identity provider's keys are; with no secret either, authentication is off.
    pub jwks: Option<JwksSource>,
    pub jwks_refresh: Duration,
    /// The `iss` every token must carry.
    pub auth_issuer: Option<String>,
    /// The `aud` every token must include.
    pub auth_audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub auth_leeway: Duration,
    pub max_streams_per_user: usize,
    /// Whether `POST /api/demo/token` signs anyone in.
    pub demo_tokens: bool,
}

/// The origins whose pages may use the gateway from the browser (CORS), besides its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Only the gateway's own pages.
    #[default]
    None,
    /// Any origin, without credentials (cookies): `*`.
    Any,
    /// These origins (`scheme://host[:port]`), with credentials.
    Listed(Vec<String>),
}

impl CorsOrigins {
    fn parse(value: &str) -> Result<CorsOrigins, String> {
        match value {
            "" => return Ok(CorsOrigins::None),
            "*" => return Ok(CorsOrigins::Any),
            _ => {}
        }
        let origins = value
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|origin| {
                let (scheme, host) = origin.split_once("://").unwrap_or(("", ""));
                let plain = |c: char| c.is_ascii_alphanumeric() || ".-:[]".contains(c);
                if matches!(scheme, "http" | "https") && !host.is_empty() && host.chars().all(plain)
                {
                    Ok(origin.to_ascii_lowercase())
                } else {
                    Err(format!(
                        "{origin:?} is not an origin: use scheme://host[:port], as in \
                         https://app.example.com, with no path"
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CorsOrigins::Listed(origins))
    }

    /// Whether a page on `origin` may send the gateway's cookie with its requests.
    pub fn allows_credentials(&self, origin: &str) -> bool {
        matches!(self, CorsOrigins::Listed(list) if list.iter().any(|o| o.eq_ignore_ascii_case(origin)))
    }
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
            cors: env.parse("CORS_ORIGINS", CorsOrigins::parse)?,
            tls: match (
                env.parse("TLS_CERT_FILE", optional_path)?,
                env.parse("TLS_KEY_FILE", optional_path)?,
            ) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                (cert, _) => {
                    let (name, missing) = match cert {
                        Some(_) => ("TLS_CERT_FILE", "TLS_KEY_FILE"),
                        None => ("TLS_KEY_FILE", "TLS_CERT_FILE"),
                    };
                    return Err(ConfigError::Invalid {
                        name,
                        value: "…".into(),
                        reason: format!("HTTPS needs {missing} as well"),
                    });
                }
            },
            keepalive: Duration::from_secs(env.parse("KEEPALIVE_SECS", positive)?),
            pool_size: env.parse("DB_POOL_SIZE", positive)?,
            max_connections: env.parse("MAX_CONNECTIONS", optional_positive)?,
            max_streams: env.parse("MAX_STREAMS", optional_positive)?,
            header_read_timeout: seconds(&env, "HEADER_READ_TIMEOUT_SECS")?,
            body_read_timeout: seconds(&env, "BODY_READ_TIMEOUT_SECS")?,
            idle_timeout: seconds(&env, "IDLE_TIMEOUT_SECS")?,
            shutdown_grace: seconds(&env, "SHUTDOWN_GRACE_SECS")?,
            broadcast_capacity: env.parse("BROADCAST_CAPACITY", positive)?,
            coalesce_window: env.parse("COALESCE_WINDOW_MS", |v| match v.parse() {
                Ok(ms) if ms <= MAX_COALESCE_WINDOW_MS => Ok(Duration::from_millis(ms)),
                _ => Err(format!(
                    "expected a whole number of milliseconds, at most {MAX_COALESCE_WINDOW_MS}"
                )),
            })?,
            ring_capacity: env.parse("RING_CAPACITY", positive)?,
            retention_age: Duration::from_secs(env.parse("RETENTION_SECS", positive)?),
            retention_events: env.parse("RETENTION_MAX_EVENTS", positive)?,
            prune_interval: Duration::from_secs(env.parse("PRUNE_INTERVAL_SECS", positive)?),
            stream_send_buffer: env.parse("STREAM_SEND_BUFFER", |v| {
                let bytes: usize = v
                    .parse()
                    .map_err(|_| "expected a whole number of bytes".to_owned())?;
                Ok::<_, String>((bytes > 0).then_some(bytes))
            })?,
            slow_client: Duration::from_secs(env.parse("SLOW_CLIENT_SECS", positive)?),
            auth_secret: env.parse("AUTH_JWT_SECRET", secret)?,
            jwks: jwks_source(&env)?,
            jwks_refresh: seconds(&env, "AUTH_JWKS_REFRESH_SECS")?,
            auth_issuer: env.parse("AUTH_ISSUER", optional_text)?,
            auth_audience: env.parse("AUTH_AUDIENCE", optional_text)?,
            auth_leeway: env.parse("AUTH_LEEWAY_SECS", |v| match v.parse() {
                Ok(secs) if secs <= MAX_LEEWAY_SECS => Ok(Duration::from_secs(secs)),
                _ => Err(format!(
                    "expected a whole number of seconds, at most {MAX_LEEWAY_SECS}"
                )),
            })?,
            max_streams_per_user: env.parse("MAX_STREAMS_PER_USER", positive)?,
            demo_tokens: env.parse("DEMO_TOKENS", flag)?,
        })
        .and_then(Config::consistent)
    }

    fn consistent(self) -> Result<Config, ConfigError> {
        if self.demo_tokens && self.auth_secret.is_none() {
            return Err(ConfigError::Invalid {
                name: "DEMO_TOKENS",
                value: "1".into(),
                reason: "demo tokens need AUTH_JWT_SECRET to sign them".into(),
            });
        }
        let auth_on = self.auth_secret.is_some() || self.jwks.is_some();
        for (name, value) in [
            ("AUTH_ISSUER", &self.auth_issuer),
            ("AUTH_AUDIENCE", &self.auth_audience),
        ] {
            if let (Some(value), false) = (value, auth_on) {
                return Err(ConfigError::Invalid {
                    name,
                    value: value.clone(),
                    reason: "authentication is off: set AUTH_JWT_SECRET, AUTH_JWKS_URL or \
                             AUTH_JWKS_FILE"
                        .into(),
                });
            }
        }
        Ok(self)
    }
}

/// AUTH_JWKS_URL or AUTH_JWKS_FILE, not both.
fn jwks_source(env: &Env<'_>) -> Result<Option<JwksSource>, ConfigError> {
    let url = env.parse("AUTH_JWKS_URL", jwks_url)?;
    let file = env.parse("AUTH_JWKS_FILE", optional_path)?;
    match (url, file) {
        (Some(_), Some(path)) => Err(ConfigError::Invalid {
            name: "AUTH_JWKS_FILE",
            value: path.display().to_string(),
            reason: "set AUTH_JWKS_URL or AUTH_JWKS_FILE, not both".into(),
        }),
        (Some(url), None) => Ok(Some(JwksSource::Url(url))),
        (None, file) => Ok(file.map(JwksSource::File)),
    }
}

/// An https URL, or an http one to a loopback address: over plain http across a network anyone
/// on the way could hand the gateway keys of their own.
fn jwks_url(value: &str) -> Result<Option<reqwest::Url>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let url = reqwest::Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        // The URL is logged and shown by /readyz; a JWKS is public anyway.
        return Err("a JWKS needs no credentials: remove them from the URL".into());
    }
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(Some(url)),
        "http" if loopback => Ok(Some(url)),
        _ => Err("use an https:// URL (plain http:// only to a loopback address)".into()),
    }
}

fn optional_text(value: &str) -> Result<Option<String>, String> {
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

/// Text for `pgsse --help`.
pub fn help() -> String {
    let mut text = String::from(
        "pgsse: streams rows inserted into PostgreSQL to browsers as Server-Sent Events.\n\n\
         Usage: pgsse [--help]\n\nSettings (environment variables):\n",
    );
    for s in SETTINGS {
        let default = match s.default {
            None => "required".into(),
            Some("") => "optional".into(),
            Some(d) => format!("default {d}"),
        };
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
            // A connection string may hold a password, and a secret is secret: never echo them.
            value: if SECRET.contains(&name) {
                "…".into()
            } else {
                value.clone()
            },
            reason: e.to_string(),
        })
    }
}

/// Settings whose values never appear in messages (a URL may hold a password).
const SECRET: &[&str] = &["DATABASE_URL", "AUTH_JWT_SECRET", "AUTH_JWKS_URL"];

fn secret(value: &str) -> Result<Option<String>, String> {
    match value.len() {
        0 => Ok(None),
        1..=31 => Err("use at least 32 characters".into()),
        _ => Ok(Some(value.to_owned())),
    }
}

fn flag(value: &str) -> Result<bool, String> {
    match value {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected 1 or 0".into()),
    }
}

/// A positive number of seconds.
fn seconds(env: &Env<'_>, name: &'static str) -> Result<Duration, ConfigError> {
    env.parse(name, positive).map(Duration::from_secs)
}

/// A file's path, or nothing when empty.
fn optional_path(value: &str) -> Result<Option<PathBuf>, String> {
    Ok((!value.is_empty()).then(|| PathBuf::from(value)))
}

/// A positive whole number, or nothing when empty.
fn optional_positive(value: &str) -> Result<Option<usize>, String> {
    if value.is_empty() {
        Ok(None)
    } else {
        positive(value).map(Some)
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
    fn a_streams_send_buffer_is_64_kib_unless_set_and_0_leaves_the_kernels() {
        let url = ("DATABASE_URL", "postgres://x/y");
        assert_eq!(config(&[url]).unwrap().stream_send_buffer, Some(65536));
        let set = |v| config(&[url, ("STREAM_SEND_BUFFER", v)]);
        assert_eq!(set("4096").unwrap().stream_send_buffer, Some(4096));
        assert_eq!(set("0").unwrap().stream_send_buffer, None);
        let err = set("64k").unwrap_err().to_string();
        assert_eq!(
            err,
            "STREAM_SEND_BUFFER=\"64k\" is invalid: expected a whole number of bytes"
        );
    }

    #[test]
    fn the_coalescing_window_is_10_ms_unless_set_and_0_turns_it_off() {
        let url = ("DATABASE_URL", "postgres://x/y");
        let window = Duration::from_millis(10);
        assert_eq!(config(&[url]).unwrap().coalesce_window, window);
        let set = |v| config(&[url, ("COALESCE_WINDOW_MS", v)]);
        assert_eq!(set("0").unwrap().coalesce_window, Duration::ZERO);
        assert_eq!(
            set("25").unwrap().coalesce_window,
            Duration::from_millis(25)
        );
        for bad in ["5ms", "1001", "-1"] {
            let err = set(bad).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "COALESCE_WINDOW_MS=\"{bad}\" is invalid: expected a whole number of \
                     milliseconds, at most 1000"
                )
            );
        }
    }

    #[test]
    fn cors_origins_are_none_any_or_a_list_of_origins() {
        let url = ("DATABASE_URL", "postgres://x/y");
        assert_eq!(config(&[url]).unwrap().cors, CorsOrigins::None);
        let any = config(&[url, ("CORS_ORIGINS", "*")]).unwrap().cors;
        assert_eq!(any, CorsOrigins::Any);
        assert!(!any.allows_credentials("https://a.example"));
        let listed = config(&[url, ("CORS_ORIGINS", "https://A.example, http://b:8080")]);
        let listed = listed.unwrap().cors;
        assert!(listed.allows_credentials("https://a.example"));
        assert!(listed.allows_credentials("http://b:8080"));
        assert!(!listed.allows_credentials("http://b:8081"));
        for bad in ["a.example", "https://a.example/path", "ftp://a"] {
            let err = config(&[url, ("CORS_ORIGINS", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("CORS_ORIGINS="), "{err}");
        }
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
    fn authentication_is_off_unless_a_long_enough_secret_is_given() {
        let url = ("DATABASE_URL", "postgres://x/y");
        assert_eq!(config(&[url]).unwrap().auth_secret, None);
        let err = config(&[url, ("AUTH_JWT_SECRET", "short secret")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "AUTH_JWT_SECRET=\"…\" is invalid: use at least 32 characters"
        );
        let err = config(&[url, ("DEMO_TOKENS", "1")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DEMO_TOKENS") && err.contains("AUTH_JWT_SECRET"),
            "{err}"
        );
        let long = "0123456789abcdef0123456789abcdef";
        let on = config(&[url, ("AUTH_JWT_SECRET", long), ("DEMO_TOKENS", "1")]).unwrap();
        assert_eq!(
            (on.auth_secret.as_deref(), on.demo_tokens),
            (Some(long), true)
        );
    }

    #[test]
    fn an_identity_providers_settings_are_checked_and_name_their_variable() {
        let url = ("DATABASE_URL", "postgres://x/y");
        let jwks = ("AUTH_JWKS_URL", "https://idp.example/certs");
        let on = config(&[url, jwks, ("AUTH_ISSUER", "https://idp.example")]).unwrap();
        assert_eq!(on.jwks.unwrap().to_string(), "https://idp.example/certs");
        assert_eq!(on.auth_leeway, Duration::from_secs(30));
        assert_eq!(on.jwks_refresh, Duration::from_secs(900));
        let local = config(&[url, ("AUTH_JWKS_URL", "http://127.0.0.1:9/jwks")]);
        assert!(local.is_ok());
        let cases = [
            (vec![("AUTH_JWKS_URL", "http://idp.example/certs")], "AUTH_JWKS_URL=\"…\" is invalid: use an https:// URL (plain http:// only to a loopback address)"),
            (vec![("AUTH_JWKS_URL", "https://u:p@idp.example/certs")], "AUTH_JWKS_URL=\"…\" is invalid: a JWKS needs no credentials: remove them from the URL"),
            (vec![jwks, ("AUTH_JWKS_FILE", "keys.json")], "AUTH_JWKS_FILE=\"keys.json\" is invalid: set AUTH_JWKS_URL or AUTH_JWKS_FILE, not both"),
            (vec![jwks, ("AUTH_LEEWAY_SECS", "301")], "AUTH_LEEWAY_SECS=\"301\" is invalid: expected a whole number of seconds, at most 300"),
            (vec![("AUTH_AUDIENCE", "pgsse")], "AUTH_AUDIENCE=\"pgsse\" is invalid: authentication is off: set AUTH_JWT_SECRET, AUTH_JWKS_URL or AUTH_JWKS_FILE"),
        ];
        for (vars, message) in cases {
            let mut vars = vars;
            vars.push(url);
            assert_eq!(config(&vars).unwrap_err().to_string(), message);
        }
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
