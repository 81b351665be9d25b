//! The listener's reader: publishes the events that notifications carry, and reads the event
//! table, over a connection that receives no notifications, whenever a notification is not
//! enough (a gap, a reference-only notification, dropped notifications) and once a second.

use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, Statement};

use super::inbox::{self, Inbox};
use super::signed::{self, NotifyKey};
use super::{within, ListenError, KEY_REREAD};
use crate::db;
use crate::event::{Event, Frame};
use crate::hub::Hub;
use crate::metrics::{Metrics, ReadBy};
use crate::store::events;

/// Publishes events from notifications, and from the table when a notification is not enough.
pub struct Reader<'a> {
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
    pub async fn new(
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
    pub async fn start_hub(&self, pg: &tokio_postgres::Config) -> Result<(), ListenError> {
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
    pub async fn forward(
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
                self.publish(
                    frame.with_topic(event.topic).committed_at(event.at),
                    received,
                );
                Ok(())
            }
            _ => self.catch_up(received).await,
        }
    }

    /// Whether `payload` is signed with the notify key. One that is shaped like a signed
    /// notification but fails may have been signed with a key that replaced ours
    /// (`pgsse.rotate_notify_key()`), so the key is read again: at once if it was not so read in
    /// the last [`KEY_REREAD`], else before the next read of the table (within
    /// [`super::DROPPED_POLL_INTERVAL`]). A forger's notifications thus cost a query every
    /// [`super::DROPPED_POLL_INTERVAL`] at most, and cannot keep an old key in use for longer.
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
    pub async fn poll(&mut self, inbox: &Inbox) -> Result<(), ListenError> {
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

    /// Reads the table because notifications were dropped (every [`super::DROPPED_POLL_INTERVAL`] while
    /// they are): their events, if they were events, are there. The key is read first if one of
    /// them cast doubt on it, so that once an event has come from here, its successors'
    /// notifications verify under a key replaced before it.
    pub async fn after_dropped(&mut self) -> Result<(), ListenError> {
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
    pub async fn catch_up(&self, since: Instant) -> Result<(), ListenError> {
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

/// The key `pgsse.emit` signs notifications with.
async fn read_key(client: &Client) -> Result<NotifyKey, ListenError> {
    let row = within(client.query_opt("select key from pgsse.notify_key", &[])).await?;
    let key: Vec<u8> = row.ok_or(ListenError::NoKey)?.get("key");
    Ok(NotifyKey::new(&key))
}
