//! Settings, parsed once at startup. Each is a field of [`Config`] carrying its flag, its
//! environment variable, its default and its help (clap derive): `pgsse --help` is made from
//! them, and a value given both ways comes from the flag. The figures the help quotes are
//! constants in `bounds`, which the modules that keep them use too; `parse` reads the settings
//! and checks that they agree with each other.

mod bounds;
mod error;
mod parse;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

pub use bounds::*;
pub use error::ConfigError;
use values::{bind_addr, coalesce_window, database_url, flag, jwks_url, leeway, positive};
use values::{seconds, secret};
pub use values::{CorsOrigins, JwksSource};

/// The log filter when RUST_LOG is unset.
pub const DEFAULT_LOG: &str = "info";

/// The gateway's configuration.
#[derive(Clone, Parser)]
#[command(
    name = "pgsse",
    version,
    about = "Streams rows inserted into PostgreSQL to browsers as Server-Sent Events.",
    after_help = "Every setting can be given as a flag or as its environment variable \
                  (the flag wins). A bad value stops the gateway with a message naming it."
)]
pub struct Config {
    /// PostgreSQL connection string (URL or key=value form)
    #[arg(long = "database-url", env = "DATABASE_URL", value_parser = database_url)]
    #[arg(hide_env_values = true, value_name = "URL")]
    pub database: tokio_postgres::Config,

    /// Schema of the demo application's tables (app_user, board, path, notification) and of the
    /// migrations' history, created if missing; give a database that has tables of its own a
    /// schema of its own for them, e.g. pgsse_demo (the gateway's own objects are in schema
    /// pgsse whatever this is)
    #[arg(long, env = "DEMO_SCHEMA", default_value = "public", value_parser = values::schema)]
    #[arg(value_name = "SCHEMA")]
    pub demo_schema: String,

    /// Address and port the HTTP server listens on: an IP address or a host name (which listens
    /// on its first address, IPv4 first), with a port
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8000", value_parser = bind_addr)]
    #[arg(value_name = "HOST:PORT")]
    pub bind_addr: SocketAddr,

    /// PEM certificate chain; with TLS_KEY_FILE, serves HTTPS with HTTP/2 and HTTP/1.1
    /// [unset: plain HTTP]
    #[arg(long, env = "TLS_CERT_FILE", value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of TLS_CERT_FILE's certificate
    #[arg(long, env = "TLS_KEY_FILE", value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// Pages on these origins (comma-separated, e.g. https://app.example.com) may open streams
    /// and call the API, with cookies; * lets any origin in, without cookies [unset: only the
    /// gateway's own pages]
    #[arg(long = "cors-origins", env = "CORS_ORIGINS", value_name = "ORIGINS")]
    #[arg(default_value = "", hide_default_value = true, value_parser = CorsOrigins::parse)]
    pub cors: CorsOrigins,

    /// Seconds of silence after which an SSE stream gets a keep-alive comment
    #[arg(long = "keepalive-secs", env = "KEEPALIVE_SECS", default_value = "15")]
    #[arg(value_parser = seconds, value_name = "SECS")]
    pub keepalive: Duration,

    /// Connections in the pool used by the REST API and replays
    #[arg(long = "db-pool-size", env = "DB_POOL_SIZE", default_value = "16")]
    #[arg(value_parser = positive::<usize>, value_name = "N")]
    pub pool_size: usize,

    #[arg(help = format!(
        "HTTP connections (streams included) held at once; beyond it stream requests get 503 \
         and {CONNECTION_RESERVE} more connections answer anything else [unset: the open-file \
         limit minus DB_POOL_SIZE minus {RESERVED_FILES}]"
    ))]
    #[arg(long, env = "MAX_CONNECTIONS", value_parser = positive::<usize>, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Event streams open at once, HTTP/1.1 and HTTP/2 alike; beyond it a stream request gets
    /// 503 with Retry-After [unset: MAX_CONNECTIONS]
    #[arg(long, env = "MAX_STREAMS", value_parser = positive::<usize>, value_name = "N")]
    pub max_streams: Option<usize>,

    /// Seconds a client has to send a request head, on a new connection and between requests
    /// on a kept-alive HTTP/1.1 one; then its connection is closed
    #[arg(long = "header-read-timeout-secs", env = "HEADER_READ_TIMEOUT_SECS")]
    #[arg(default_value = "15", value_parser = seconds, value_name = "SECS")]
    pub header_read_timeout: Duration,

    /// Seconds a client has to send a request body to the API; then it gets 408
    #[arg(long = "body-read-timeout-secs", env = "BODY_READ_TIMEOUT_SECS")]
    #[arg(default_value = "30", value_parser = seconds, value_name = "SECS")]
    pub body_read_timeout: Duration,

    /// A connection on which no byte has moved either way for this long is closed: an HTTP/2
    /// connection with nothing to say, a stream whose client stopped reading
    #[arg(
        long = "idle-timeout-secs",
        env = "IDLE_TIMEOUT_SECS",
        default_value = "120"
    )]
    #[arg(value_parser = seconds, value_name = "SECS")]
    pub idle_timeout: Duration,

    /// On SIGTERM, seconds the open streams and requests have to finish once told to; then
    /// what is left is closed and the gateway exits
    #[arg(
        long = "shutdown-grace-secs",
        env = "SHUTDOWN_GRACE_SECS",
        default_value = "10"
    )]
    #[arg(value_parser = seconds, value_name = "SECS")]
    pub shutdown_grace: Duration,

    /// Events buffered for live clients before a slow one must catch up from history
    #[arg(long, env = "BROADCAST_CAPACITY", default_value = "4096")]
    #[arg(value_parser = positive::<usize>, value_name = "EVENTS")]
    pub broadcast_capacity: usize,

    #[arg(help = format!(
        "When events come faster than this, each waits up to this many milliseconds to go to \
         the streams with the others (at most {} µs per open stream, so few streams get every \
         event at once); an event after a quiet spell goes at once (0: every event on its own; \
         at most {MAX_COALESCE_WINDOW_MS})",
        COALESCE_PER_STREAM.as_micros()
    ))]
    #[arg(
        long = "coalesce-window-ms",
        env = "COALESCE_WINDOW_MS",
        default_value = "10"
    )]
    #[arg(value_parser = coalesce_window, value_name = "MS")]
    pub coalesce_window: Duration,

    /// Recent events kept in memory for resuming clients
    #[arg(long, env = "RING_CAPACITY", default_value = "10000")]
    #[arg(value_parser = positive::<usize>, value_name = "EVENTS")]
    pub ring_capacity: usize,

    /// Bytes of event data the ring of recent events holds at most: beyond it (or beyond
    /// RING_CAPACITY) the oldest events leave it, and clients further behind read the table.
    /// Large events stay alive only while the ring holds them, so this also bounds what
    /// clients that stopped reading keep of them
    #[arg(long, env = "RING_BYTES", default_value = "67108864")]
    #[arg(value_parser = positive::<usize>, value_name = "BYTES")]
    pub ring_bytes: usize,

    /// Events older than this many seconds are pruned from pgsse.event
    #[arg(
        long = "retention-secs",
        env = "RETENTION_SECS",
        default_value = "604800"
    )]
    #[arg(value_parser = seconds, value_name = "SECS")]
    pub retention_age: Duration,

    /// At most this many events are kept in pgsse.event
    #[arg(long = "retention-max-events", env = "RETENTION_MAX_EVENTS")]
    #[arg(default_value = "1000000", value_parser = positive::<i64>, value_name = "EVENTS")]
    pub retention_events: i64,

    /// Seconds between retention runs
    #[arg(
        long = "prune-interval-secs",
        env = "PRUNE_INTERVAL_SECS",
        default_value = "60"
    )]
    #[arg(value_parser = seconds, value_name = "SECS")]
    pub prune_interval: Duration,

    /// A client still behind the live stream after this many seconds is disconnected to resume
    #[arg(
        long = "slow-client-secs",
        env = "SLOW_CLIENT_SECS",
        default_value = "30"
    )]
    #[arg(value_parser = seconds, value_name = "SECS")]
    pub slow_client: Duration,

    /// Kernel send buffer (SO_SNDBUF) of each event stream's socket, in bytes, and over HTTP/2
    /// what may wait for each stream: what a client that stops reading can hold before its
    /// stream waits and later catches up from memory or the table (0: the kernel's own sizing,
    /// up to megabytes per stream, and h2's 400 KB per stream)
    #[arg(long, env = "STREAM_SEND_BUFFER", default_value = "65536")]
    #[arg(value_parser = values::bytes, value_name = "BYTES")]
    pub stream_send_buffer: usize,

    #[arg(help = format!(
        "Turns authentication on: HS256 secret ({MIN_SECRET_LEN}+ characters) that signs \
         access tokens"
    ))]
    #[arg(long = "auth-jwt-secret", env = "AUTH_JWT_SECRET", value_parser = secret)]
    #[arg(hide_env_values = true, value_name = "SECRET")]
    pub auth_secret: Option<String>,

    #[arg(help = format!(
        "Turns authentication on: the identity provider's JWKS (https://, or http:// to a \
         loopback address; redirects are not followed), whose keys check RS256, ES256 and \
         EdDSA tokens; fetched at start, every AUTH_JWKS_REFRESH_SECS, and for a token with an \
         unknown key (at most every {} s)",
        JWKS_UNKNOWN_KEY_REFRESH.as_secs()
    ))]
    #[arg(long, env = "AUTH_JWKS_URL", value_parser = jwks_url, value_name = "URL")]
    #[arg(hide_env_values = true)]
    pub auth_jwks_url: Option<reqwest::Url>,

    /// Instead of AUTH_JWKS_URL: a JWKS file, read at start and as often
    #[arg(long, env = "AUTH_JWKS_FILE", value_name = "FILE")]
    pub auth_jwks_file: Option<PathBuf>,

    /// Seconds between two readings of the JWKS
    #[arg(long = "auth-jwks-refresh-secs", env = "AUTH_JWKS_REFRESH_SECS")]
    #[arg(default_value = "900", value_parser = seconds, value_name = "SECS")]
    pub jwks_refresh: Duration,

    /// Tokens must name this issuer (iss), e.g. https://idp.example.com/realms/main
    #[arg(long, env = "AUTH_ISSUER", value_name = "ISSUER")]
    pub auth_issuer: Option<String>,

    /// Tokens must name this audience (aud)
    #[arg(long, env = "AUTH_AUDIENCE", value_name = "AUDIENCE")]
    pub auth_audience: Option<String>,

    #[arg(help = format!(
        "Seconds of clock skew allowed on a token's exp and nbf (at most {MAX_LEEWAY_SECS})"
    ))]
    #[arg(
        long = "auth-leeway-secs",
        env = "AUTH_LEEWAY_SECS",
        default_value = "30"
    )]
    #[arg(value_parser = leeway, value_name = "SECS")]
    pub auth_leeway: Duration,

    /// The token claim that names its user, whom targeted events are for: e.g.
    /// preferred_username or email where the identity provider's sub is an opaque id; a token
    /// without it (as a non-empty string) is refused
    #[arg(long, env = "AUTH_USER_CLAIM", default_value = "sub", value_parser = values::claim)]
    #[arg(value_name = "CLAIM")]
    pub auth_user_claim: String,

    /// Streams one user may hold; beyond it the oldest is closed
    #[arg(long, env = "MAX_STREAMS_PER_USER", default_value = "10")]
    #[arg(value_parser = positive::<usize>, value_name = "N")]
    pub max_streams_per_user: usize,

    /// 1 enables POST /api/demo/token, which signs anyone in (demos only; needs
    /// AUTH_JWT_SECRET)
    #[arg(long, env = "DEMO_TOKENS", default_value = "0", value_parser = flag)]
    #[arg(action = ArgAction::Set, num_args = 0..=1, default_missing_value = "1")]
    #[arg(value_name = "0|1")]
    pub demo_tokens: bool,

    /// Log filter, e.g. debug or pgsse=debug,warp=info; at info every request gets an
    /// access-log line (pgsse::access=warn leaves them out)
    #[arg(long = "log", env = "RUST_LOG", default_value = DEFAULT_LOG, value_name = "FILTER")]
    pub log: String,

    /// How log lines are written: text for people, json for log shippers (one object per
    /// line: ts, level, target, message)
    #[arg(
        long,
        env = "LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
}

/// How the log is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The certificate chain and key files for HTTPS; `None` serves plain HTTP.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        Some((
            self.tls_cert_file.as_deref()?,
            self.tls_key_file.as_deref()?,
        ))
    }

    /// Where the identity provider's keys are, if anywhere.
    pub fn jwks(&self) -> Option<JwksSource> {
        match (&self.auth_jwks_url, &self.auth_jwks_file) {
            (Some(url), _) => Some(JwksSource::Url(url.clone())),
            (None, file) => file.clone().map(JwksSource::File),
        }
    }

    /// SO_SNDBUF for stream sockets; `None` leaves the kernel's sizing.
    pub fn send_buffer(&self) -> Option<usize> {
        (self.stream_send_buffer > 0).then_some(self.stream_send_buffer)
    }
}

impl std::fmt::Debug for Config {
    /// Only what may appear in a log: no connection string, no secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind_addr", &self.bind_addr)
            .field("tls", &self.tls())
            .field(
                "authentication",
                &(self.auth_secret.is_some() || self.jwks().is_some()),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
