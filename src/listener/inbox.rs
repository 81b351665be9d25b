//! The listener's inbox: the notifications the connection's driver hands the reader, bounded in
//! bytes.
//!
//! The driver must read the connection as fast as PostgreSQL writes to it, whatever the reader
//! is doing: the answer to the reader's query comes behind every notification the server sends
//! first, and a flood of them (any role may send one) would otherwise pile up in memory. So the
//! driver drops a notification that is not even shaped like a signed one at once (counted as
//! rejected), and passes the rest on while they take at most [`QUEUE_BYTES`]; past that it drops
//! them too (counted as overflowed). Either way it tells the reader, which then reads the event
//! table: whatever a dropped notification could have carried is there.
//!
//! The driver also notes when the connection was last heard from ([`Heard`]): while a flood is
//! being read, an answer to a query on the connection comes late, but the connection is alive.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, Connection};

use super::{signed, CHANNEL};
use crate::metrics::Metrics;

/// How many bytes of notifications (payloads and bookkeeping) may wait for the reader. A
/// notification is at most 8000 bytes, so this is over a hundred of the largest.
pub const QUEUE_BYTES: usize = 1 << 20;
/// Dropped notifications are logged at most this often.
const REJECTION_LOG_EVERY: Duration = Duration::from_secs(10);

/// A notification waiting for the reader.
pub struct Notification {
    pub payload: String,
    /// When it came off the connection.
    pub received: Instant,
    /// Its room in the queue, given back when the reader is done with it.
    _room: OwnedSemaphorePermit,
}

type Message = Result<Notification, tokio_postgres::Error>;

/// The reader's end: the notifications, and what the driver dropped.
pub struct Inbox {
    receiver: mpsc::UnboundedReceiver<Message>,
    shared: Arc<Shared>,
}

/// What the driver and the reader share.
struct Shared {
    /// Bytes of room left in the queue.
    room: Arc<Semaphore>,
    /// Whether a notification was dropped (rejected, or for want of room) since the reader last
    /// asked.
    dropped: AtomicBool,
    /// A std mutex: held to count a rejection, never across an await.
    rejections: Mutex<Rejections>,
    metrics: Arc<Metrics>,
    /// When the driver started.
    born: Instant,
    /// Milliseconds from `born` to the last message the driver took off the connection.
    heard_ms: AtomicU64,
}

/// When the listener's connection was last heard from, as the driver sees it.
#[derive(Clone)]
pub struct Heard(Arc<Shared>);

impl Heard {
    /// The last time a message came off the connection (or the driver started).
    pub fn last(&self) -> Instant {
        self.0.born + Duration::from_millis(self.0.heard_ms.load(Relaxed))
    }
}

impl Inbox {
    /// The next notification, or the error that ended the connection; `None` once the driver
    /// has stopped.
    pub async fn recv(&mut self) -> Option<Message> {
        self.receiver.recv().await
    }

    /// Whether a notification was dropped since the last call: its event, if it was one, is
    /// only in the table.
    pub fn take_dropped(&self) -> bool {
        self.shared.dropped.swap(false, Relaxed)
    }

    /// Counts `payload` as a notification the gateway's functions did not sign.
    pub fn reject(&self, payload: &str) {
        self.shared.reject(payload);
    }

    /// When the connection was last heard from.
    pub fn heard(&self) -> Heard {
        Heard(self.shared.clone())
    }
}

impl Shared {
    /// Notes that a message came off the connection now.
    fn hear(&self) {
        let ms = self.born.elapsed().as_millis();
        self.heard_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Relaxed);
    }

    fn reject(&self, payload: &str) {
        self.metrics.notifications_rejected.inc();
        self.dropped.store(true, Relaxed);
        let mut rejections = self.rejections.lock().unwrap_or_else(|e| e.into_inner());
        rejections.count(payload);
    }

    /// Takes a notification off the connection: rejects it, queues it for the reader, or drops
    /// it for want of room. Returns false once the reader is gone.
    fn take(&self, sender: &mpsc::UnboundedSender<Message>, payload: &str) -> bool {
        self.metrics.notification_received();
        if !signed::looks_signed(payload) {
            self.reject(payload);
            return true;
        }
        let size = payload.len() + std::mem::size_of::<Notification>();
        let Ok(room) = self.room.clone().try_acquire_many_owned(size as u32) else {
            self.metrics.notifications_overflowed.inc();
            self.dropped.store(true, Relaxed);
            return true;
        };
        let notification = Notification {
            payload: payload.to_owned(),
            received: Instant::now(),
            _room: room,
        };
        sender.send(Ok(notification)).is_ok()
    }
}

/// Spawns the task that drives `connection`, and returns the reader's end and the task. This is
/// where `LISTEN` differs from a pooled connection: a connection merely spawned as a future would
/// throw notifications away.
pub fn drive<S, T>(
    connection: Connection<S, T>,
    metrics: Arc<Metrics>,
) -> (Inbox, tokio::task::JoinHandle<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, receiver) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        room: Arc::new(Semaphore::new(QUEUE_BYTES)),
        dropped: AtomicBool::new(false),
        rejections: Mutex::default(),
        metrics,
        born: Instant::now(),
        heard_ms: AtomicU64::new(0),
    });
    let task = tokio::spawn(driver(connection, sender, shared.clone()));
    (Inbox { receiver, shared }, task)
}

async fn driver<S, T>(
    mut connection: Connection<S, T>,
    sender: mpsc::UnboundedSender<Message>,
    shared: Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let message = poll_fn(|cx| connection.poll_message(cx)).await;
        shared.hear();
        match message {
            Some(Ok(AsyncMessage::Notification(n))) => {
                if !shared.take(&sender, n.payload()) {
                    return;
                }
            }
            Some(Ok(AsyncMessage::Notice(notice))) => {
                log::info!("listener: server notice: {}", notice.message());
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => {
                let _ = sender.send(Err(err));
                return;
            }
            None => return,
        }
    }
}

/// Notifications dropped because the gateway's functions did not sign them: counted, and logged
/// at most once every [`REJECTION_LOG_EVERY`] so that a flood of them cannot flood the log.
#[derive(Default)]
struct Rejections {
    /// Dropped since the last log line.
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl Rejections {
    fn count(&mut self, payload: &str) {
        self.unlogged += 1;
        if self
            .logged_at
            .is_some_and(|at| at.elapsed() < REJECTION_LOG_EVERY)
        {
            return;
        }
        let sample: String = payload.chars().take(120).collect();
        log::warn!(
            "listener: dropped {} notification(s) on channel {CHANNEL} that the gateway's \
             functions did not sign: another role sent them (any role that can connect may \
             NOTIFY), or pgsse.notify_key was replaced; the latest began {sample:?}",
            self.unlogged
        );
        self.unlogged = 0;
        self.logged_at = Some(Instant::now());
    }
}
