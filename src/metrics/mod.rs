//! What the gateway counts and measures, for `/metrics`. Every metric is a field here, named,
//! described and registered once, where it is made (`Metrics::default`); values that live
//! elsewhere (the streams open, the hub's position, the database's figures) are read when
//! scraped ([`Snapshot`], written out by [`exposition`]).
//!
//! Counters and gauges are prometheus-client's: one relaxed atomic add per update, never a wait.
//! Histograms take a short lock, so they are observed per event or per read, never per delivery.

mod exposition;
mod latency;
#[cfg(target_os = "linux")]
mod process;
mod readiness;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry, Unit};

pub use self::exposition::{DatabaseFigures, Format, Snapshot};
use self::latency::Latency;
pub use self::latency::ReadBy;
pub use self::readiness::LISTENER_SILENCE;
use crate::store::events::QueueFill;

/// Counters labelled by a task's name.
type ByTask = Family<[(&'static str, &'static str); 1], Counter>;

/// The version and commit the binary was built from, for `pgsse_build_info`.
const BUILD: [(&str, &str); 2] = [
    ("version", env!("CARGO_PKG_VERSION")),
    ("commit", env!("PGSSE_COMMIT")),
];

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
    // The metrics, each named and described where it is registered, in `Metrics::default`.
    pub connections_open: Gauge,
    pub connections_max: Gauge,
    pub events_received: Counter,
    notifications_received: Counter,
    pub notifications_rejected: Counter,
    pub notifications_overflowed: Counter,
    pub frames_delivered: Counter,
    pub replayed_from_ring: Counter,
    pub replayed_from_table: Counter,
    pub lag_resyncs: Counter,
    pub forced_disconnects: Counter,
    pub streams_refused: Counter,
    pub listener_reconnects: Counter,
    task_panics: ByTask,
    latency: Latency,
    /// Every metric above, registered once; a scrape adds what it reads then (see
    /// [`exposition`]).
    registry: Registry,
}

impl Default for Metrics {
    /// Every metric, registered as it is made: its field, its name (after `pgsse_`) and its help
    /// stand together, and the exposition lists them in this order.
    fn default() -> Metrics {
        let mut root = Registry::default();
        #[cfg(target_os = "linux")]
        root.register_collector(Box::new(process::Process));
        let r = &mut Register(root.sub_registry_with_prefix("pgsse"));
        let build = Info::new(BUILD);
        (r.0).register(
            "build",
            "The version and commit the gateway was built from",
            build,
        );
        Metrics {
            started: Instant::now(),
            listening: AtomicBool::new(false),
            not_ready: Mutex::new(Some("waiting for the database".to_owned())),
            last_notification_ms: AtomicU64::new(0),
            last_read_ms: AtomicU64::new(0),
            queue_fill: Mutex::new(QueueFill::default()),
            connections_open: r.gauge(
                "connections_open",
                "HTTP connections open now, streams included",
            ),
            connections_max: r.gauge(
                "connections_max",
                "Connections served at once (MAX_CONNECTIONS); beyond it stream requests get 503",
            ),
            events_received: r.counter(
                "events_received",
                "Events taken from PostgreSQL and published",
            ),
            notifications_received: r.counter(
                "notifications_received",
                "Notifications received on the listener connection",
            ),
            notifications_rejected: r.counter(
                "notifications_rejected",
                "Notifications dropped because the gateway's functions did not sign them (sent by \
                 another role, or under a replaced pgsse.notify_key)",
            ),
            notifications_overflowed: r.counter(
                "notifications_overflowed",
                "Notifications dropped unread because as many as the listener holds were already \
                 waiting to be read (a flood); their events were read from pgsse.event instead",
            ),
            frames_delivered: r.counter(
                "frames_delivered",
                "Event frames handed to client connections",
            ),
            replayed_from_ring: r.counter(
                "replayed_from_ring",
                "Frames replayed to resuming or lagging clients from memory",
            ),
            replayed_from_table: r.counter(
                "replayed_from_table",
                "Frames replayed to resuming or lagging clients from pgsse.event",
            ),
            lag_resyncs: r.counter(
                "lag_resyncs",
                "Times a client fell behind the broadcast and caught up from history",
            ),
            forced_disconnects: r.counter(
                "forced_disconnects",
                "Clients disconnected for being too far behind",
            ),
            streams_refused: r.counter(
                "streams_refused",
                "Stream requests refused with 503 because MAX_CONNECTIONS connections (or \
                 MAX_STREAMS streams) were open",
            ),
            listener_reconnects: r.counter(
                "listener_reconnects",
                "Times the listener lost its connection and reconnected",
            ),
            task_panics: r.add(
                "task_panics",
                "Times a supervised task (the listener, the pruner, the hub's release timer) \
                 panicked and was started again",
                ByTask::default(),
            ),
            latency: Latency::registered(r),
            registry: root,
        }
    }
}

/// Registers each metric as it is made, under its name and help.
struct Register<'a>(&'a mut Registry);

impl Register<'_> {
    fn counter(&mut self, name: &str, help: &str) -> Counter {
        self.add(name, help, Counter::default())
    }

    fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        self.add(name, help, Gauge::default())
    }

    /// `metric`, registered; the registry keeps a clone, which shares its values.
    fn add<M: Metric + Clone>(&mut self, name: &str, help: &str, metric: M) -> M {
        self.0.register(name, help, metric.clone());
        metric
    }

    /// `metric`, registered in seconds (its name ends in `_seconds`).
    fn seconds<M: Metric + Clone>(&mut self, name: &str, help: &str, metric: M) -> M {
        self.0
            .register_with_unit(name, help, Unit::Seconds, metric.clone());
        metric
    }
}

impl Metrics {
    /// Records that the supervised task `task` panicked.
    pub fn task_panicked(&self, task: &'static str) {
        self.task_panics.get_or_create(&[("task", task)]).inc();
    }

    /// How often the supervised task `task` panicked.
    pub fn task_panics(&self, task: &'static str) -> u64 {
        self.task_panics.get_or_create(&[("task", task)]).get()
    }
}
