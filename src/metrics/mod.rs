//! What the gateway counts and measures, for `/metrics`. Every metric is a field here and is
//! named, typed and described once, in [`exposition`]; values that live elsewhere (the streams
//! open, the hub's position, the database's figures) are read when scraped ([`Snapshot`]).
//!
//! Counters and gauges are prometheus-client's: one relaxed atomic add per update, never a wait.
//! Histograms take a short lock, so they are observed per event or per read, never per delivery.

mod exposition;
#[cfg(target_os = "linux")]
mod process;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

pub use self::exposition::{DatabaseFigures, Format, Snapshot};
use crate::event::FirstWrite;
use crate::store::events::QueueFill;

/// Who read a page of `pgsse.event`, the `reader` label of the catch-up histograms.
#[derive(Clone, Copy, Debug)]
pub enum ReadBy {
    /// A stream catching up: a client resuming with Last-Event-ID, or one that fell behind.
    Stream,
    /// The listener: after (re)connecting, for a notification that carried only a reference or
    /// skipped ids, and in its once-a-second poll.
    Listener,
}

impl ReadBy {
    fn label(self) -> [(&'static str, &'static str); 1] {
        match self {
            ReadBy::Stream => [("reader", "stream")],
            ReadBy::Listener => [("reader", "listener")],
        }
    }
}

/// Histograms labelled by [`ReadBy`].
type ByReader = Family<[(&'static str, &'static str); 1], Histogram>;

/// Counters labelled by a task's name.
type ByTask = Family<[(&'static str, &'static str); 1], Counter>;

/// The longest the listener may go without reading the event log (its once-a-second poll, or a
/// query's deadline after it) before `/readyz` and `pgsse_listener_up` say it is not listening:
/// events may have stopped flowing even though its connection looks up.
pub const LISTENER_SILENCE: Duration = Duration::from_secs(15);

/// Bounds of the delivery delay's buckets, in seconds: from well under the coalescing window to
/// a client that took seconds to reach.
const DELAY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Bounds of the catch-up reads' durations, in seconds, up to the query timeout.
const READ_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Bounds of the events a catch-up read returned, up to a full page.
const ROWS_BUCKETS: [f64; 6] = [0.0, 1.0, 10.0, 100.0, 250.0, 500.0];

pub struct Metrics {
    started: Instant,
    /// Whether the listener is connected and LISTENing; `/readyz` reports it.
    listening: AtomicBool,
    /// Why the gateway is not ready (the database cannot be reached, the listener reconnects),
    /// for `/readyz`. A std mutex: it is set on failures and read by probes, never held across
    /// an await.
    not_ready: Mutex<Option<String>>,
    /// Milliseconds after `started` at which the last notification arrived; 0 if none yet.
    last_notification_ms: AtomicU64,
    /// Milliseconds after `started` at which the listener last read the event log.
    last_read_ms: AtomicU64,
    /// How full the notification queue was at the listener's last poll.
    queue_fill: Mutex<QueueFill>,
    /// Panics of supervised tasks, by task (see [`crate::supervisor`]).
    task_panics: ByTask,
    /// Events the listener took from PostgreSQL and published (each counted once).
    pub events_received: Counter,
    notifications_received: Counter,
    /// Notifications dropped because the gateway's functions did not sign them.
    pub notifications_rejected: Counter,
    /// Notifications dropped unread because the listener's inbox was full; their events are read
    /// from the table.
    pub notifications_overflowed: Counter,
    /// Event frames handed to client connections: one per event per client.
    pub frames_delivered: Counter,
    pub replayed_from_ring: Counter,
    pub replayed_from_table: Counter,
    pub lag_resyncs: Counter,
    pub forced_disconnects: Counter,
    pub listener_reconnects: Counter,
    /// Stream requests refused because MAX_CONNECTIONS (or MAX_STREAMS) were open.
    pub streams_refused: Counter,
    /// HTTP connections open now, streams included.
    pub connections_open: Gauge,
    /// MAX_CONNECTIONS as the server applies it.
    pub connections_max: Gauge,
    /// From the listener receiving an event to the first stream handing it to a client: one
    /// observation per event (see [`crate::event::Frame::first_write`]).
    first_write: Histogram,
    /// From an event's commit (the database's clock) to the first stream handing it to a
    /// client (the gateway's), once per event whose commit time is known.
    commit_to_first_write: Histogram,
    /// How long each read of a page of `pgsse.event` took, by reader.
    catch_up_seconds: ByReader,
    /// How many events each read of a page of `pgsse.event` returned, by reader.
    catch_up_events: ByReader,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let metrics = Metrics {
            started: Instant::now(),
            listening: AtomicBool::new(false),
            not_ready: Mutex::new(Some("waiting for the database".to_owned())),
            last_notification_ms: AtomicU64::new(0),
            last_read_ms: AtomicU64::new(0),
            task_panics: ByTask::default(),
            queue_fill: Mutex::new(QueueFill::default()),
            events_received: Counter::default(),
            notifications_received: Counter::default(),
            notifications_rejected: Counter::default(),
            notifications_overflowed: Counter::default(),
            frames_delivered: Counter::default(),
            replayed_from_ring: Counter::default(),
            replayed_from_table: Counter::default(),
            lag_resyncs: Counter::default(),
            forced_disconnects: Counter::default(),
            listener_reconnects: Counter::default(),
            streams_refused: Counter::default(),
            connections_open: Gauge::default(),
            connections_max: Gauge::default(),
            first_write: Histogram::new(DELAY_BUCKETS),
            commit_to_first_write: Histogram::new(DELAY_BUCKETS),
            catch_up_seconds: Family::new_with_constructor(|| Histogram::new(READ_BUCKETS)),
            catch_up_events: Family::new_with_constructor(|| Histogram::new(ROWS_BUCKETS)),
        };
        // Both readers' series exist from the start, at zero, so that rates work from the first
        // scrape.
        for reader in [ReadBy::Stream, ReadBy::Listener] {
            drop(metrics.catch_up_seconds.get_or_create(&reader.label()));
            drop(metrics.catch_up_events.get_or_create(&reader.label()));
        }
        metrics
    }
}

impl Metrics {
    pub fn set_listening(&self, listening: bool) {
        if listening {
            self.listener_read();
            *self.lock_not_ready() = None;
        }
        self.listening.store(listening, Relaxed);
    }

    /// Records that the listener has just read the event log.
    pub fn listener_read(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_read_ms.store(ms, Relaxed);
    }

    /// How long since the listener last read the event log.
    fn since_listener_read(&self) -> Duration {
        let ms = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(ms.saturating_sub(self.last_read_ms.load(Relaxed)))
    }

    /// Records how full the notification queue is; returns what it was.
    pub fn set_queue_fill(&self, fill: QueueFill) -> QueueFill {
        let mut queue = self.queue_fill.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut queue, fill)
    }

    /// How full the notification queue was at the listener's last poll.
    pub fn queue_fill(&self) -> QueueFill {
        *self.queue_fill.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the supervised task `task` panicked.
    pub fn task_panicked(&self, task: &'static str) {
        self.task_panics.get_or_create(&[("task", task)]).inc();
    }

    /// How often the supervised task `task` panicked.
    pub fn task_panics(&self, task: &'static str) -> u64 {
        self.task_panics.get_or_create(&[("task", task)]).get()
    }

    /// Records why the gateway is not ready, for `/readyz`.
    pub fn set_not_ready(&self, why: String) {
        *self.lock_not_ready() = Some(why);
    }

    /// Why the gateway is not ready, if it said, or if the listener has gone quiet.
    pub fn not_ready(&self) -> Option<String> {
        let said = self.lock_not_ready().clone();
        let quiet = self.since_listener_read();
        said.or_else(|| {
            (self.listening.load(Relaxed) && quiet > LISTENER_SILENCE).then(|| {
                format!(
                    "the listener has not read the event log for {} s, so events may not be \
                     flowing",
                    quiet.as_secs()
                )
            })
        })
    }

    fn lock_not_ready(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.not_ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the listener is LISTENing and has read the event log lately (see
    /// [`LISTENER_SILENCE`]).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Relaxed) && self.since_listener_read() <= LISTENER_SILENCE
    }

    pub fn notification_received(&self) {
        self.notifications_received.inc();
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_notification_ms.store(ms.max(1), Relaxed);
    }

    /// Seconds since the last notification, or `None` before the first.
    pub fn seconds_since_notification(&self) -> Option<f64> {
        match self.last_notification_ms.load(Relaxed) {
            0 => None,
            ms => Some((self.started.elapsed().as_millis() as u64).saturating_sub(ms) as f64 / 1e3),
        }
    }

    /// Records a stream handing an event to a client for the first time.
    pub fn first_write(&self, delay: FirstWrite) {
        self.first_write.observe(delay.since_received.as_secs_f64());
        if let Some(since_commit) = delay.since_commit {
            self.commit_to_first_write
                .observe(since_commit.as_secs_f64());
        }
    }

    /// Records a read of a page of `pgsse.event` that took `took` and returned `events`.
    pub fn catch_up_read(&self, reader: ReadBy, took: Duration, events: usize) {
        let label = reader.label();
        let seconds = self.catch_up_seconds.get_or_create(&label);
        seconds.observe(took.as_secs_f64());
        self.catch_up_events
            .get_or_create(&label)
            .observe(events as f64);
    }
}
