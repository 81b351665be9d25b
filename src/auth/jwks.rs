//! The identity provider's keys: fetched from `AUTH_JWKS_URL` (or read from `AUTH_JWKS_FILE`)
//! at start, again every `AUTH_JWKS_REFRESH_SECS`, and when a token names a key the gateway does
//! not know, at most once per [`JWKS_UNKNOWN_KEY_REFRESH`] so that tokens with made-up key ids
//! cannot make the gateway hammer the provider. A failed refresh keeps the keys it had.
//!
//! Redirects are not followed: the keys come from the address `AUTH_JWKS_URL` names, which the
//! startup check approved (https, or http to a loopback address), and never from one that the
//! server, or anyone on the way to a loopback http one, names instead.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::keys::KeySet;
use crate::backoff::Backoff;
use crate::config::{JwksSource, JWKS_UNKNOWN_KEY_REFRESH};
use crate::shutdown::Shutdown;

/// The longest a JWKS document may be; identity providers' are a few kilobytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The longest the TCP and TLS connect to the provider may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one fetch may take, from connecting to the body's last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest redirect target that the error of a refused redirect names.
const MAX_LOCATION: usize = 512;
/// Tries per refresh before it gives up until the next one.
const ATTEMPTS: u32 = 3;
/// The least time between two refreshes while no keys could be read yet.
const MIN_RETRY: Duration = Duration::from_secs(1);

/// What the latest refresh left.
#[derive(Clone, Default)]
pub struct Loaded {
    /// The keys of the latest document that could be read; `None` until one could.
    pub keys: Option<Arc<KeySet>>,
    /// Why the latest refresh failed, if it did.
    pub error: Option<String>,
    /// When the latest refresh ended, well or not.
    pub done: Option<Instant>,
}

/// The keys, and the means to refresh them.
pub struct Jwks {
    source: JwksSource,
    client: reqwest::Client,
    loaded: watch::Sender<Loaded>,
    /// Wakes the refresher for a token with an unknown key.
    wanted: Notify,
    /// When a token with an unknown key last asked for a refresh.
    last_asked: Mutex<Option<Instant>>,
    /// Time between scheduled refreshes.
    every: Duration,
}

impl Jwks {
    pub fn new(source: JwksSource, every: Duration) -> Jwks {
        Jwks {
            source,
            client: client(),
            loaded: watch::Sender::new(Loaded::default()),
            wanted: Notify::new(),
            last_asked: Mutex::new(None),
            every,
        }
    }

    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    /// The keys now, and why the latest refresh failed.
    pub fn loaded(&self) -> Loaded {
        self.loaded.borrow().clone()
    }

    /// Asks for a refresh because a token names an unknown key, and waits (at most
    /// [`FETCH_TIMEOUT`]) until it is done. Within [`JWKS_UNKNOWN_KEY_REFRESH`] of the last one
    /// asked for, waits for that one if it is still running, or returns `false` at once.
    pub async fn refresh_for_unknown_key(&self) -> bool {
        // Subscribed first, so that a refresh ending from here on is seen.
        let mut changed = self.loaded.subscribe();
        let done = changed.borrow().done;
        let running = match self.ask(done) {
            Some(running) => running,
            None => {
                log::debug!("a token names an unknown key; the keys were refreshed lately");
                return false;
            }
        };
        if !running {
            log::info!(
                "a token names an unknown key: refreshing the keys from {}",
                self.source
            );
            self.wanted.notify_one();
        }
        matches!(
            tokio::time::timeout(FETCH_TIMEOUT, changed.changed()).await,
            Ok(Ok(()))
        )
    }

    /// Whether a refresh asked for lately is still running (`Some(true)`), is over (`None`), or
    /// none was asked for lately and one is to start now (`Some(false)`).
    fn ask(&self, done: Option<Instant>) -> Option<bool> {
        // A std Mutex: the critical section is a comparison, never held across an await.
        let mut last = self.last_asked.lock().expect("not poisoned");
        match *last {
            Some(at) if at.elapsed() < JWKS_UNKNOWN_KEY_REFRESH => {
                done.is_none_or(|done| done < at).then_some(true)
            }
            _ => {
                *last = Some(Instant::now());
                Some(false)
            }
        }
    }

    /// Reads the keys, trying up to [`ATTEMPTS`] times; publishes them, or why it failed.
    async fn refresh(&self) -> bool {
        let mut backoff = Backoff::default();
        let mut attempt = 1;
        let error = loop {
            match self.read().await.and_then(|bytes| KeySet::parse(&bytes)) {
                Ok(keys) => {
                    log::info!("loaded {} from {}", keys.describe(), self.source);
                    self.loaded.send_replace(Loaded {
                        keys: Some(Arc::new(keys)),
                        error: None,
                        done: Some(Instant::now()),
                    });
                    return true;
                }
                Err(error) if attempt == ATTEMPTS => break error,
                Err(error) => log::debug!("reading the keys from {}: {error}", self.source),
            }
            attempt += 1;
            tokio::time::sleep(backoff.next_delay()).await;
        };
        self.failed(error);
        false
    }

    fn failed(&self, error: String) {
        self.loaded.send_modify(|loaded| {
            match &loaded.keys {
                Some(keys) => log::warn!(
                    "reading the keys from {} failed {ATTEMPTS} times, keeping the {}: {error}",
                    self.source,
                    keys.describe()
                ),
                None => log::error!(
                    "reading the keys from {} failed {ATTEMPTS} times, and no token from the \
                     identity provider can be checked until it works: {error}",
                    self.source
                ),
            }
            loaded.error = Some(error);
            loaded.done = Some(Instant::now());
        });
    }

    /// The document's bytes, at most [`MAX_JWKS_BYTES`] of them.
    async fn read(&self) -> Result<Vec<u8>, String> {
        match &self.source {
            JwksSource::Url(url) => fetch(&self.client, url).await,
            JwksSource::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || read_file(&path))
                    .await
                    .map_err(|e| e.to_string())?
            }
        }
    }
}

/// Keeps the keys fresh until shutdown: at start, then every refresh interval or when a token
/// asks; while no keys could be read yet, again after a backoff of 1 to 10 s.
pub async fn run(jwks: Arc<Jwks>, mut shutdown: Shutdown) {
    let mut backoff = Backoff::default();
    loop {
        let loaded = tokio::select! {
            loaded = jwks.refresh() => loaded,
            _ = shutdown.fired() => return,
        };
        let wait = if loaded || jwks.loaded().keys.is_some() {
            backoff.reset();
            jwks.every
        } else {
            backoff.next_delay().max(MIN_RETRY)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = jwks.wanted.notified() => {}
            _ = shutdown.fired() => return,
        }
    }
}

/// An HTTPS client that trusts the web's public roots (as browsers do), with deadlines, and that
/// follows no redirect.
fn client() -> reqwest::Client {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the HTTP client's settings are valid")
}

async fn fetch(client: &reqwest::Client, url: &Url) -> Result<Vec<u8>, String> {
    let mut response = client
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(describe)?;
    if response.status().is_redirection() {
        return Err(redirected(url, &response));
    }
    if !response.status().is_success() {
        return Err(format!("the server answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "the document is larger than {MAX_JWKS_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Why a redirect is refused, and where it pointed (resolved against `url`, without any
/// credentials, and only if it is a URL of a sensible length), so that an operator who trusts the
/// new address can set it.
fn redirected(url: &Url, response: &reqwest::Response) -> String {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|location| location.to_str().ok())
        .and_then(|location| url.join(location).ok())
        .map(|mut target| {
            let _ = target.set_username("");
            let _ = target.set_password(None);
            target
        })
        .filter(|target| target.as_str().len() <= MAX_LOCATION);
    let to = location.map_or(String::new(), |target| format!(", a redirect to {target}"));
    format!(
        "the server answered {}{to}; redirects are not followed: set AUTH_JWKS_URL to the keys' \
         own address",
        response.status()
    )
}

/// A reqwest error with its causes (a TLS or DNS failure is two levels down).
fn describe(error: reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_JWKS_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("the file is larger than {MAX_JWKS_BYTES} bytes"));
    }
    Ok(bytes)
}
