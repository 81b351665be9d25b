//! How each setting's text becomes its value. Each parser says what it expected; the caller
//! adds which setting it was.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::bounds::{MAX_COALESCE_WINDOW_MS, MAX_LEEWAY_SECS, MIN_SECRET_LEN};

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
    pub(super) fn parse(value: &str) -> Result<CorsOrigins, String> {
        match value.trim() {
            "" => return Ok(CorsOrigins::None),
            "*" => return Ok(CorsOrigins::Any),
            _ => {}
        }
        let origins = value
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(origin)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CorsOrigins::Listed(origins))
    }

    /// Whether a page on `origin` may send the gateway's cookie with its requests.
    pub fn allows_credentials(&self, origin: &str) -> bool {
        matches!(self, CorsOrigins::Listed(list) if list.iter().any(|o| o.eq_ignore_ascii_case(origin)))
    }
}

/// Where the identity provider's keys come from: AUTH_JWKS_URL or AUTH_JWKS_FILE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    Url(reqwest::Url),
    File(PathBuf),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::Url(url) => write!(f, "{url}"),
            JwksSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One origin of CORS_ORIGINS, lowercased.
fn origin(origin: &str) -> Result<String, String> {
    let (scheme, host) = origin.split_once("://").unwrap_or(("", ""));
    let plain = |c: char| c.is_ascii_alphanumeric() || ".-:[]".contains(c);
    if matches!(scheme, "http" | "https") && !host.is_empty() && host.chars().all(plain) {
        Ok(origin.to_ascii_lowercase())
    } else {
        Err(format!(
            "{origin:?} is not an origin: use scheme://host[:port], as in \
             https://app.example.com, with no path"
        ))
    }
}

pub(super) fn database_url(value: &str) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
    tokio_postgres::Config::from_str(value)
}

/// `ip:port`, or `host:port` resolved now to the host's first IPv4 address (or its first
/// address if it has no IPv4 one): the gateway listens on one address.
pub(super) fn bind_addr(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    let expected = || "expected host:port, as in 127.0.0.1:8000 or localhost:8000".to_owned();
    let (host, port) = value.rsplit_once(':').ok_or_else(expected)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(expected());
    }
    let addrs: Vec<SocketAddr> = value
        .to_socket_addrs()
        .map_err(|err| format!("cannot resolve {host}: {err}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{host} has no address"))
}

/// An HS256 secret: long enough to be one.
pub(super) fn secret(value: &str) -> Result<String, String> {
    match value.len() {
        n if n < MIN_SECRET_LEN => Err(format!("use at least {MIN_SECRET_LEN} characters")),
        _ => Ok(value.to_owned()),
    }
}

pub(super) fn flag(value: &str) -> Result<bool, String> {
    match value {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected 1 or 0".into()),
    }
}

/// A positive number of seconds.
pub(super) fn seconds(value: &str) -> Result<Duration, String> {
    positive(value).map(Duration::from_secs)
}

pub(super) fn coalesce_window(value: &str) -> Result<Duration, String> {
    match value.parse() {
        Ok(ms) if ms <= MAX_COALESCE_WINDOW_MS => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "expected a whole number of milliseconds, at most {MAX_COALESCE_WINDOW_MS}"
        )),
    }
}

/// A number of bytes, 0 included.
pub(super) fn bytes(value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| "expected a whole number of bytes".to_owned())
}

pub(super) fn positive<T: FromStr + PartialOrd + Default>(value: &str) -> Result<T, String> {
    match value.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err("expected a positive whole number".into()),
    }
}

/// AUTH_LEEWAY_SECS: 0 included, at most [`MAX_LEEWAY_SECS`].
pub(super) fn leeway(value: &str) -> Result<Duration, String> {
    match value.parse() {
        Ok(secs) if secs <= MAX_LEEWAY_SECS => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "expected a whole number of seconds, at most {MAX_LEEWAY_SECS}"
        )),
    }
}

/// DEMO_SCHEMA: a plain SQL identifier (so that it needs no quoting anywhere), and none of the
/// schemas PostgreSQL or the gateway keep for themselves.
pub(super) fn schema(value: &str) -> Result<String, String> {
    let plain = value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain {
        return Err(
            "expected a schema name of 1 to 63 lowercase letters, digits and _, not \
                    starting with a digit, as in pgsse_demo"
                .into(),
        );
    }
    if value == "pgsse" || value.starts_with("pg_") || value == "information_schema" {
        return Err(format!(
            "schema {value} is not the application's: use one of its own, as in pgsse_demo"
        ));
    }
    Ok(value.to_owned())
}

/// AUTH_USER_CLAIM: the name of a claim, with no space or control character in it.
pub(super) fn claim(value: &str) -> Result<String, String> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("expected a claim's name, as in sub, preferred_username or email".into());
    }
    Ok(value.to_owned())
}

/// An https URL, or an http one to a loopback address: over plain http across a network anyone
/// on the way could hand the gateway keys of their own.
pub(super) fn jwks_url(value: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        // The URL is logged and shown by /readyz; a JWKS is public anyway.
        return Err("a JWKS needs no credentials: remove them from the URL".into());
    }
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err("use an https:// URL (plain http:// only to a loopback address)".into()),
    }
}
