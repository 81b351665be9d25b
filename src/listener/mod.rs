//! The listener: one dedicated PostgreSQL connection that `LISTEN`s, and one beside it that reads
//! the event table; together they feed the hub.
//!
//! Invariants: only this module sees `AsyncMessage`; it is the hub's only publisher, and it
//! publishes in id order without gaps that the table does not also have. It never gives up: a lost
//! or silent connection is replaced with jittered exponential backoff, and after every (re)connect
//! it reads the event table from the last id it published, so notifications sent while it was away
//! cost nothing. A read of the table every second backs up notifications in case one is missed,
//! and doubles as the liveness check that notices a half-open connection; the listening
//! connection is pinged as often.
//!
//! Why two connections: PostgreSQL sends a listening session every notification already queued
//! before it answers that session's next query. Were the table read on the listening connection,
//! a flood of notifications would hold back the very read that makes up for dropping them.
//!
//! Trust: an event reaches the hub only if it is in `pgsse.event` (where only the gateway's own
//! functions write) or comes in a notification those functions signed ([`signed`]). Any role
//! that can connect may send a notification on the channel; an unsigned one is counted and
//! dropped, and never moves the hub's position. A flood of them costs bounded memory and never
//! holds a real event back ([`inbox`], [`reader`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{Client, Connection, NoTls, Socket};

use self::inbox::Inbox;
use self::reader::Reader;
use crate::backoff::Backoff;
use crate::db;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::supervisor;

mod inbox;
mod reader;
pub mod signed;

/// The notification channel `pgsse.emit` notifies.
pub const CHANNEL: &str = "pgsse";
/// How often the table is read to back up notifications and to prove the connection alive.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// While notifications are being dropped (unsigned, or for want of room in the inbox), the table
/// is read this often, so that an event whose notification was among them is not held back.
const DROPPED_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// A notification that looks signed but fails to verify re-reads the key at once at most this
/// often; otherwise the key is read again at the next poll.
const KEY_REREAD: Duration = Duration::from_secs(10);
/// How long connecting (TCP and the startup handshake) or any query on the listener's connections
/// may take before the connection is deemed dead. A ping of the listening connection may take
/// longer while notifications keep coming: it waits its turn behind them.
const LISTENER_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error("cannot connect: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("connection failed: {0}")]
    Connection(#[from] tokio_postgres::Error),
    #[error("connection closed by the server")]
    Closed,
    #[error("the connection that reads the event table failed: {0}")]
    Reads(#[source] tokio_postgres::Error),
    #[error("no answer within {LISTENER_DEADLINE:?}, the connection is presumed dead")]
    Timeout,
    #[error(
        "pgsse.notify_key is empty, so no notification can be verified; \
         run `select pgsse.rotate_notify_key()`"
    )]
    NoKey,
    #[error("failed ({0}); a bug of the gateway's, it starts again from the last event published")]
    Panicked(String),
}

/// Runs the listener until shutdown.
pub async fn run(
    pg: tokio_postgres::Config,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    let mut backoff = Backoff::default();
    loop {
        let session = supervisor::catch(session(&pg, &hub, &metrics, &mut backoff));
        let err = tokio::select! {
            result = session => match result {
                Ok(result) => result.unwrap_err(),
                Err(panic) => {
                    metrics.task_panicked("listener");
                    ListenError::Panicked(panic)
                }
            },
            () = shutdown.fired() => break,
        };
        metrics.set_listening(false);
        metrics.listener_reconnects.inc();
        let delay = backoff.next_delay();
        let why = format!("listener: {}", db::explain(&err, &db::describe(&pg)));
        log::warn!(
            "{why}; reconnecting in {} ms (last event {})",
            delay.as_millis(),
            hub.position().last_id
        );
        metrics.set_not_ready(why);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.fired() => break,
        }
    }
    metrics.set_listening(false);
    log::info!("listener stopped");
}

/// One life of the listener's connections: connect, LISTEN, catch up, then forward until
/// something fails.
async fn session(
    pg: &tokio_postgres::Config,
    hub: &Hub,
    metrics: &Arc<Metrics>,
    backoff: &mut Backoff,
) -> Result<Infallible, ListenError> {
    let (listening, connection) = connect(pg).await?;
    let (mut inbox, driver) = inbox::drive(connection, metrics.clone());
    let _driver = AbortOnDrop(driver);
    within(listening.batch_execute(&format!("listen {CHANNEL}"))).await?;
    let (client, connection) = connect(&for_reads(pg)).await?;
    let mut reads = AbortOnDrop(tokio::spawn(connection));
    let mut reader = Reader::new(client, hub, metrics).await?;
    if !hub.is_started() {
        reader.start_hub(pg).await?;
    }
    // LISTEN first, then read: whatever committed before LISTEN is in the table.
    reader.catch_up(Instant::now()).await?;
    log::info!("listener: listening after event {}", hub.position().last_id);
    metrics.set_listening(true);
    backoff.reset();
    follow(&mut reader, &mut inbox, &listening, &mut reads).await
}

/// Forwards notifications and reads the table as they and the clock ask, until a connection
/// fails.
async fn follow(
    reader: &mut Reader<'_>,
    inbox: &mut Inbox,
    listening: &Client,
    reads: &mut AbortOnDrop<Result<(), tokio_postgres::Error>>,
) -> Result<Infallible, ListenError> {
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut dropped = tokio::time::interval(DROPPED_POLL_INTERVAL);
    dropped.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let pulse = pulse(listening, inbox.heard());
    tokio::pin!(pulse);
    loop {
        tokio::select! {
            message = inbox.recv() => match message {
                Some(Ok(notification)) => reader.forward(inbox, &notification).await?,
                Some(Err(err)) => return Err(err.into()),
                None => return Err(ListenError::Closed),
            },
            err = &mut pulse => return Err(err),
            ended = &mut reads.0 => return Err(match ended {
                Ok(Err(err)) => ListenError::Reads(err),
                _ => ListenError::Closed,
            }),
            _ = poll.tick() => reader.poll(inbox).await?,
            _ = dropped.tick() => {
                if inbox.take_dropped() {
                    reader.after_dropped().await?;
                }
            }
        }
    }
}

/// Opens a connection. tokio-postgres's connect_timeout covers the TCP connect only: a peer that
/// accepts the connection and never answers the startup handshake (a frozen proxy or pooler)
/// would hold the listener for ever.
async fn connect(
    pg: &tokio_postgres::Config,
) -> Result<(Client, Connection<Socket, NoTlsStream>), ListenError> {
    timeout(LISTENER_DEADLINE, pg.connect(NoTls))
        .await
        .map_err(|_| ListenError::Timeout)?
        .map_err(ListenError::Connect)
}

/// The settings of the connection that reads the table: the listening one's, named apart in
/// `pg_stat_activity`.
fn for_reads(pg: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut pg = pg.clone();
    let name = format!(
        "{} reads",
        pg.get_application_name().unwrap_or("pgsse listener")
    );
    pg.application_name(&name);
    pg
}

/// Pings the listening connection every [`POLL_INTERVAL`], and returns once it has not been heard
/// from for [`LISTENER_DEADLINE`]: no answer to the ping, and no notification either. A connection
/// busy sending notifications answers late, but is alive.
async fn pulse(client: &Client, heard: inbox::Heard) -> ListenError {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let asked = Instant::now();
        let ping = client.batch_execute("");
        tokio::pin!(ping);
        loop {
            let silent_until = asked.max(heard.last()) + LISTENER_DEADLINE;
            tokio::select! {
                // An answer that has come counts, however long the gateway took to look.
                biased;
                answer = &mut ping => match answer {
                    Ok(()) => break,
                    Err(err) => return err.into(),
                },
                () = tokio::time::sleep_until(silent_until) => {
                    if asked.max(heard.last()) + LISTENER_DEADLINE <= Instant::now() {
                        return ListenError::Timeout;
                    }
                }
            }
        }
    }
}

async fn within<T>(
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, ListenError> {
    match timeout(LISTENER_DEADLINE, query).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ListenError::Timeout),
    }
}

/// Aborts a task when dropped, so a session's connections never outlive it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
