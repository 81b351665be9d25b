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
//! holds a real event back ([`inbox`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{Client, Connection, NoTls, Socket, Statement};

use self::inbox::Inbox;
use self::signed::NotifyKey;
use crate::backoff::Backoff;
use crate::db;
use crate::event::{Event, Frame};
use crate::hub::Hub;
use crate::metrics::{Metrics, ReadBy};
use crate::shutdown::Shutdown;
use crate::store::events;
use crate::supervisor;

mod inbox;
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

/// Publishes events from notifications, and from the table when a notification is not enough.
struct Reader<'a> {
    client: Client,
    /// [`events::EVENTS_AFTER`], prepared.
    statement: Statement,
    /// [`events::POLL`], prepared.
    poll: Statement,
    key: NotifyKey,
    /// When `key` was last read again at once after a notification failed to verify.
    key_reread: Option<Instant>,
    /// Whether a notification shaped like a signed one failed to verify without the key being
    /// read again: the next read of the table reads it first.
    key_doubted: bool,
    /// Whether a notification has verified since the last poll of the table.
    verified_since_poll: bool,
    hub: &'a Hub,
    metrics: &'a Metrics,
}

impl<'a> Reader<'a> {
    /// A reader on `client`, with its statements prepared and the notify key read.
    async fn new(
        client: Client,
        hub: &'a Hub,
        metrics: &'a Metrics,
    ) -> Result<Reader<'a>, ListenError> {
        Ok(Reader {
            statement: within(events::prepare(&client)).await?,
            poll: within(client.prepare(events::POLL)).await?,
            key: read_key(&client).await?,
            key_reread: None,
            key_doubted: false,
            client,
            verified_since_poll: false,
            hub,
            metrics,
        })
    }

    /// Starts the hub where the log stood when the gateway started, not now: streams may have
    /// opened since, while the database could not be reached, and every event committed after
    /// they opened is theirs. A second more makes up for the time a commit takes to be seen.
    async fn start_hub(&self, pg: &tokio_postgres::Config) -> Result<(), ListenError> {
        let ago = self.hub.age() + Duration::from_secs(1);
        let start = within(events::position(&self.client, ago)).await?;
        self.hub.start(start);
        log::info!(
            "event log at {} stands at event {} (pruned through {})",
            db::describe(pg),
            start.last_id,
            start.pruned_through
        );
        Ok(())
    }

    /// Publishes the event a notification carries, if the gateway's functions signed it. A
    /// reference-only notification (an event for someone in particular, or too large for
    /// `pg_notify`) or one that skips ids is served from the table instead, so that nothing
    /// before it can be lost. `received` is when the notification came off the connection.
    async fn forward(
        &mut self,
        inbox: &Inbox,
        notification: &inbox::Notification,
    ) -> Result<(), ListenError> {
        let (payload, received) = (notification.payload.as_str(), notification.received);
        if !self.verified(payload).await? {
            inbox.reject(payload);
            return Ok(());
        }
        let event = match Event::from_notification(payload) {
            Ok(event) => event,
            Err(err) => {
                log::warn!("listener: ignoring a signed notification that is not an event ({err})");
                return Ok(());
            }
        };
        let last_id = self.hub.position().last_id;
        match event.data {
            _ if event.id <= last_id => Ok(()),
            Some(data) if event.id == last_id + 1 => {
                let frame = Frame::render(event.id, &event.kind, data.get(), None);
                self.publish(frame.committed_at(event.at), received);
                Ok(())
            }
            _ => self.catch_up(received).await,
        }
    }

    /// Whether `payload` is signed with the notify key. One that is shaped like a signed
    /// notification but fails may have been signed with a key that replaced ours
    /// (`pgsse.rotate_notify_key()`), so the key is read again: at once if it was not so read in
    /// the last [`KEY_REREAD`], else before the next read of the table (within
    /// [`DROPPED_POLL_INTERVAL`]). A forger's notifications thus cost a query every
    /// [`DROPPED_POLL_INTERVAL`] at most, and cannot keep an old key in use for longer.
    async fn verified(&mut self, payload: &str) -> Result<bool, ListenError> {
        if self.key.verifies(payload) {
            self.verified_since_poll = true;
            return Ok(true);
        }
        let recently = self.key_reread.is_some_and(|at| at.elapsed() < KEY_REREAD);
        if !signed::looks_signed(payload) {
            return Ok(false);
        }
        if recently {
            self.key_doubted = true;
            return Ok(false);
        }
        self.key = read_key(&self.client).await?;
        self.key_reread = Some(Instant::now());
        self.verified_since_poll = self.key.verifies(payload);
        Ok(self.verified_since_poll)
    }

    /// The once-a-second read of the table: a backup for notifications and a liveness check. A
    /// notification verified since the last tick proves the connection alive, and any gap it
    /// showed was read at once, so then the events are not read (unless notifications were
    /// dropped meanwhile): in a burst, reading the events alongside the notifications made the
    /// gateway publish a third as fast. The horizon is read every time, so that resumes are told
    /// about pruning done elsewhere, and so is how full the notification queue is.
    async fn poll(&mut self, inbox: &Inbox) -> Result<(), ListenError> {
        let poll = within(events::poll(&self.client, &self.poll)).await?;
        self.pruned(poll.pruned_through);
        self.queue(poll.queue);
        let verified = std::mem::take(&mut self.verified_since_poll);
        if inbox.take_dropped() {
            return self.after_dropped().await;
        }
        if !verified {
            return self.catch_up(Instant::now()).await;
        }
        self.metrics.listener_read();
        Ok(())
    }

    /// Reads the table because notifications were dropped (every [`DROPPED_POLL_INTERVAL`] while
    /// they are): their events, if they were events, are there. The key is read first if one of
    /// them cast doubt on it, so that once an event has come from here, its successors'
    /// notifications verify under a key replaced before it.
    async fn after_dropped(&mut self) -> Result<(), ListenError> {
        if std::mem::take(&mut self.key_doubted) {
            self.key = read_key(&self.client).await?;
        }
        self.catch_up(Instant::now()).await
    }

    /// Records how full the notification queue is, and says so when events stop or start being
    /// notified because of it.
    fn queue(&self, fill: events::QueueFill) {
        let was = self.metrics.set_queue_fill(fill);
        match (was.unnotified(), fill.unnotified()) {
            (false, true) => log::warn!(
                "PostgreSQL's notification queue is {:.1}% full, over pgsse.notify_queue_limit \
                 ({:.1}%): events are committed without a notification and reach clients through \
                 the gateway's reads of pgsse.event, up to a second later. A session that \
                 LISTENs and does not read (or a long transaction of a listening session) holds \
                 the queue: see pg_stat_activity",
                fill.usage * 100.0,
                fill.limit * 100.0
            ),
            (true, false) => log::info!(
                "PostgreSQL's notification queue is {:.1}% full: events are notified again",
                fill.usage * 100.0
            ),
            _ => {}
        }
    }

    /// Publishes every event in the table after the last one published. `since` is when the
    /// gateway learnt of them: the notification that asked for the read, or the read itself.
    async fn catch_up(&self, since: Instant) -> Result<(), ListenError> {
        loop {
            let after = self.hub.position().last_id;
            let started = Instant::now();
            let read = events::after(&self.client, &self.statement, after, events::PAGE);
            let page = within(read).await?;
            let took = started.elapsed();
            self.metrics
                .catch_up_read(ReadBy::Listener, took, page.frames.len());
            self.pruned(page.pruned_through);
            let full = page.full;
            for frame in page.frames {
                self.publish(frame, since);
            }
            if !full {
                self.metrics.listener_read();
                return Ok(());
            }
        }
    }

    /// Tells the hub how far the table has been pruned.
    fn pruned(&self, through: i64) {
        if let Some(lost) = self.hub.pruned(through) {
            log::warn!(
                "listener: events {lost}..={through} were pruned before they could be read; live \
                 clients are told to resync"
            );
        }
    }

    /// Publishes a frame the gateway learnt of at `received`.
    fn publish(&self, frame: Frame, received: Instant) {
        if self.hub.publish(frame.received_at(received.into_std())) {
            self.metrics.events_received.inc();
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

/// The key `pgsse.emit` signs notifications with.
async fn read_key(client: &Client) -> Result<NotifyKey, ListenError> {
    let row = within(client.query_opt("select key from pgsse.notify_key", &[])).await?;
    let key: Vec<u8> = row.ok_or(ListenError::NoKey)?.get("key");
    Ok(NotifyKey::new(&key))
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
