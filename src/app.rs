//! Building and running the gateway, the same way for `main` and for tests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};

use crate::auth::{self, Verifier};
use crate::config::{Config, RESERVED_FILES};
use crate::db;
use crate::http::State;
use crate::hub::Hub;
use crate::listener;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::retention::{self, Retention};
use crate::server;
use crate::shutdown::{self, Shutdown, Trigger};
use crate::stream;
use crate::supervisor;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Tls(#[from] server::tls::TlsError),
    #[error("BIND_ADDR={addr}: cannot listen: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A gateway that is bound, ready to run. It needs its database only once it runs, and waits for
/// it there.
pub struct App {
    tcp: TcpListener,
    state: Arc<State>,
    trigger: Trigger,
    retention: Arc<Retention>,
    /// The database, for migrations.
    database: tokio_postgres::Config,
    /// The schema of the demo's tables (`DEMO_SCHEMA`), where the migrations make them.
    demo_schema: String,
    limits: server::Limits,
}

/// Connections the kernel may hold for the server to accept (capped by net.core.somaxconn). The
/// default of 128 overflowed when a few hundred clients connected at once, as after a restart:
/// each overflow costs its client a SYN retransmit, a second or more.
const LISTEN_BACKLOG: u32 = 4096;

impl App {
    /// Binds the HTTP port (port 0 picks a free one; see [`App::local_addr`]). The database is
    /// not touched yet: a gateway started before its database serves at once and reports, in
    /// `/readyz` and the log, what it waits for.
    pub async fn build(config: Config) -> Result<App, StartError> {
        let tls = match config.tls() {
            Some((cert, key)) => Some(server::tls::acceptors(cert, key)?),
            None => None,
        };
        let tcp = listen(config.bind_addr).map_err(|source| StartError::Bind {
            addr: config.bind_addr,
            source,
        })?;
        let (trigger, shutdown) = shutdown::channel();
        let limits = server::Limits::from_config(&config, connection_cap(&config), tls);
        let state = Arc::new(state(&config, &limits, shutdown));
        log_authentication(&state);
        Ok(App {
            tcp,
            state,
            trigger,
            retention: Arc::new(Retention::from_config(&config)),
            database: config.database,
            demo_schema: config.demo_schema,
            limits,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.tcp
            .local_addr()
            .expect("a bound socket has an address")
    }

    /// Serves until `stop` completes, then ends every stream, stops the listener and returns once
    /// all of them are gone.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()> + Send + 'static) {
        let App {
            tcp,
            state,
            trigger,
            retention,
            database,
            demo_schema,
            limits,
        } = self;
        let background = tokio::spawn(with_database(
            database,
            demo_schema,
            state.clone(),
            retention,
            [
                trigger.subscribe(),
                trigger.subscribe(),
                trigger.subscribe(),
                trigger.subscribe(),
            ],
        ));
        if let Some(jwks) = state.auth.as_ref().and_then(|a| a.jwks()) {
            tokio::spawn(auth::jwks::run(jwks.clone(), trigger.subscribe()));
        }
        let addr = tcp.local_addr().expect("bound");
        match limits.tls {
            Some(_) => log::info!("listening on https://{addr} (HTTP/2 and HTTP/1.1)"),
            None => log::info!("listening on http://{addr}"),
        }
        server::serve(tcp, state, limits, stop, || {
            log::info!("shutting down: ending streams and the listener");
            trigger.fire();
        })
        .await;
        trigger.wait_for_tasks().await;
        let _ = background.await;
        log::info!("stopped");
    }
}

/// What every handler and stream shares: the pool, the hub, the metrics, the streams' settings,
/// the registry of streams and the API's settings.
fn state(config: &Config, limits: &server::Limits, shutdown: Shutdown) -> State {
    let max_streams = config.max_streams.unwrap_or(limits.max_connections);
    log::info!("serving up to {max_streams} streams at once");
    let pool = db::pool(config);
    // The API's description is written once, here, rather than by its first request.
    crate::http::openapi::prepare();
    let streams = Arc::new(stream::Settings {
        hub: Arc::new(Hub::from_config(config)),
        pool,
        metrics: Arc::new(Metrics::default()),
        registry: Arc::new(Registry::new(config.max_streams_per_user, max_streams)),
        keepalive: config.keepalive,
        slow_client: config.slow_client,
        shutdown,
    });
    State {
        streams,
        auth: Verifier::from_config(config),
        demo_tokens: config.demo_tokens,
        secure_cookie: limits.tls.is_some(),
        body_timeout: config.body_read_timeout,
        cors: config.cors.clone(),
        migrated: AtomicBool::new(false),
    }
}

/// Says at startup which tokens are taken, and warns of what only demos should do.
fn log_authentication(state: &State) {
    match &state.auth {
        None => log::info!(
            "authentication is off: streams are open to anyone (set AUTH_JWT_SECRET or \
             AUTH_JWKS_URL)"
        ),
        Some(verifier) => log::info!(
            "authentication is on: streams and the administrator's API take {} (the API for \
             users, boards and paths stays open)",
            verifier.describe()
        ),
    }
    if let Some(unchecked) = state.auth.as_ref().and_then(Verifier::unchecked) {
        log::warn!("{unchecked}");
    }
    if state.demo_tokens {
        log::warn!(
            "DEMO_TOKENS is on: POST /api/demo/token signs anyone in as anyone, administrator \
             included; for demos only"
        );
    }
}

/// What needs the database: the migrations, retried until the database is there, then the
/// listener and the pruner, until shutdown.
async fn with_database(
    database: tokio_postgres::Config,
    demo_schema: String,
    state: Arc<State>,
    retention: Arc<Retention>,
    [migrating, listening, pruning, releasing]: [Shutdown; 4],
) {
    log::info!("migrating {}", db::describe(&database));
    if !db::migrate_until_done(&database, &demo_schema, state.metrics(), migrating).await {
        return;
    }
    state.migrated.store(true, Ordering::Release);
    tokio::join!(
        listener::run(
            db::for_listener(database),
            state.hub().clone(),
            state.metrics().clone(),
            listening,
        ),
        supervisor::restart_on_panic("pruner", state.metrics(), || {
            retention::run(state.pool().clone(), retention.clone(), pruning.clone())
        }),
        supervisor::restart_on_panic("release timer", state.metrics(), || {
            state.hub().release_held(releasing.clone())
        }),
    );
}

/// Raises this process's open-file limit to its hard limit and returns it: each stream is a
/// socket, and the default soft limit (often 1024) would cap the gateway far below what the
/// machine allows.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The process's soft open-file limit.
fn open_file_limit() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Listens on `addr` with [`LISTEN_BACKLOG`], and SO_REUSEADDR so that a restarted gateway can bind
/// while its previous connections are in TIME_WAIT.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// MAX_CONNECTIONS, or what the open-file limit leaves after the pool and a reserve.
fn connection_cap(config: &Config) -> usize {
    let files = open_file_limit().map_or(usize::MAX, |limit| {
        usize::try_from(limit).unwrap_or(usize::MAX)
    });
    let cap = match config.max_connections {
        Some(cap) => cap,
        None => files
            .saturating_sub(config.pool_size + RESERVED_FILES)
            .max(1),
    };
    log::info!("serving up to {cap} connections at once (open-file limit {files})");
    if cap > files {
        log::warn!(
            "MAX_CONNECTIONS={cap} exceeds the open-file limit of {files}: at that limit the \
             database connections cannot be reopened"
        );
    }
    cap
}
