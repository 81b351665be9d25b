//! The exposition: each metric's name, type and help, written in the text format the scraper
//! asked for.
//!
//! The registry is built for each scrape around the long-lived metrics (clones of their atomics)
//! and the values read for that scrape, so that a figure the scrape could not read is left out
//! rather than reported stale or as zero.

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::Metrics;

/// The version and commit the binary was built from, for `pgsse_build_info`.
const BUILD: [(&str, &str); 2] = [
    ("version", env!("CARGO_PKG_VERSION")),
    ("commit", env!("PGSSE_COMMIT")),
];

/// What a scrape reads from outside the metrics: the stream registry, the hub, the database.
pub struct Snapshot {
    pub clients_connected: i64,
    /// The hub's `last_id`.
    pub last_event_id: i64,
    /// The hub's `pruned_through`.
    pub pruned_through: i64,
    /// `None` when the database did not answer in time.
    pub database: Option<DatabaseFigures>,
}

/// What `/metrics` reads from the database: catalog figures only (see `sql/metrics.sql`).
pub struct DatabaseFigures {
    pub queue_usage: f64,
    /// The planner's estimate of the rows; negative before the table's first vacuum or analyze.
    pub rows_estimate: f64,
    pub bytes_estimate: i64,
}

/// The text formats `/metrics` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0, which Prometheus asks for first among the text formats.
    OpenMetrics,
    /// Prometheus' own text format 0.0.4, for every other client (curl, older scrapers).
    Prometheus,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics if it names it at all, as Prometheus
    /// does; Prometheus text otherwise. Media types are case-insensitive.
    pub fn accepted(accept: Option<&str>) -> Format {
        let accept = accept.unwrap_or_default().to_ascii_lowercase();
        if accept.contains("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
        }
    }
}

impl Metrics {
    /// Every metric, with `now`'s figures, in `format`.
    pub fn encode(&self, now: &Snapshot, format: Format) -> String {
        let registry = self.registry(now);
        let mut out = String::new();
        // Writing into a String fails only if a metric's own encoding does, which none of these do.
        let written = match format {
            Format::OpenMetrics => text::encode(&mut out, &registry),
            Format::Prometheus => prometheus_text::encode(&mut out, &registry),
        };
        written.expect("metrics encode into a String");
        out
    }

    fn registry(&self, now: &Snapshot) -> Registry {
        let mut root = Registry::default();
        let pgsse = root.sub_registry_with_prefix("pgsse");
        self.register_state(pgsse, now);
        register_database(pgsse, now.database.as_ref());
        self.register_counters(pgsse);
        self.register_histograms(pgsse);
        pgsse.register(
            "build",
            "The version and commit the gateway was built from",
            Info::new(BUILD),
        );
        #[cfg(target_os = "linux")]
        root.register_collector(Box::new(super::process::Process));
        root
    }

    /// Gauges of what the gateway holds now.
    fn register_state(&self, r: &mut Registry, now: &Snapshot) {
        let gauge = |value: i64| ConstGauge::new(value);
        r.register(
            "clients_connected",
            "SSE streams open now",
            gauge(now.clients_connected),
        );
        r.register(
            "connections_open",
            "HTTP connections open now, streams included",
            self.connections_open.clone(),
        );
        r.register(
            "connections_max",
            "Connections served at once (MAX_CONNECTIONS); beyond it stream requests get 503",
            self.connections_max.clone(),
        );
        r.register(
            "listener_up",
            format!(
                "1 while the listener connection is LISTENing and has read pgsse.event within \
                 the last {} s",
                super::LISTENER_SILENCE.as_secs()
            ),
            gauge(i64::from(self.is_listening())),
        );
        r.register(
            "notification_queue_limit",
            "pgsse.notify_queue_limit, as the listener last read it: while \
             pgsse_notification_queue_usage is at or above it, events are committed without a \
             notification and delivered from pgsse.event",
            ConstGauge::new(self.queue_fill().limit),
        );
        r.register(
            "hub_last_event_id",
            "Id of the last event published to clients",
            gauge(now.last_event_id),
        );
        r.register(
            "event_log_pruned_through",
            "Id through which pgsse.event has been pruned, as the gateway last read pgsse.horizon",
            gauge(now.pruned_through),
        );
        if let Some(seconds) = self.seconds_since_notification() {
            r.register(
                "seconds_since_last_notification",
                "Seconds since the listener last received a notification",
                ConstGauge::new(seconds),
            );
        }
    }

    fn register_counters(&self, r: &mut Registry) {
        let counters = [
            (
                "events_received",
                "Events taken from PostgreSQL and published",
                &self.events_received,
            ),
            (
                "notifications_received",
                "Notifications received on the listener connection",
                &self.notifications_received,
            ),
            (
                "notifications_rejected",
                "Notifications dropped because the gateway's functions did not sign them (sent by \
                 another role, or under a replaced pgsse.notify_key)",
                &self.notifications_rejected,
            ),
            (
                "notifications_overflowed",
                "Notifications dropped unread because as many as the listener holds were already \
                 waiting to be read (a flood); their events were read from pgsse.event instead",
                &self.notifications_overflowed,
            ),
            (
                "frames_delivered",
                "Event frames handed to client connections",
                &self.frames_delivered,
            ),
            (
                "replayed_from_ring",
                "Frames replayed to resuming or lagging clients from memory",
                &self.replayed_from_ring,
            ),
            (
                "replayed_from_table",
                "Frames replayed to resuming or lagging clients from pgsse.event",
                &self.replayed_from_table,
            ),
            (
                "lag_resyncs",
                "Times a client fell behind the broadcast and caught up from history",
                &self.lag_resyncs,
            ),
            (
                "forced_disconnects",
                "Clients disconnected for being too far behind",
                &self.forced_disconnects,
            ),
            (
                "streams_refused",
                "Stream requests refused with 503 because MAX_CONNECTIONS connections (or \
                 MAX_STREAMS streams) were open",
                &self.streams_refused,
            ),
            (
                "listener_reconnects",
                "Times the listener lost its connection and reconnected",
                &self.listener_reconnects,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        r.register(
            "task_panics",
            "Times a supervised task (the listener, the pruner, the hub's release timer) \
             panicked and was started again",
            self.task_panics.clone(),
        );
    }

    fn register_histograms(&self, r: &mut Registry) {
        r.register_with_unit(
            "commit_to_first_write",
            "Seconds from an event's commit in PostgreSQL (by the database's clock, carried by \
             its notification or read from pgsse.event) to the first stream handing its frame \
             to a client connection (by the gateway's clock); once per event, for events some \
             client receives. On different machines it is only as right as their clocks agree",
            Unit::Seconds,
            self.commit_to_first_write.clone(),
        );
        r.register_with_unit(
            "received_to_first_write",
            "Seconds from the listener receiving an event from PostgreSQL (its notification, or \
             the read of pgsse.event that found it) to the first stream handing its frame to a \
             client connection; once per event, for events some client receives: the gateway's \
             own part of pgsse_commit_to_first_write_seconds, by its clock alone",
            Unit::Seconds,
            self.first_write.clone(),
        );
        r.register_with_unit(
            "catch_up_read",
            "Seconds each read of a page of pgsse.event took: by a stream catching up \
             (reader=stream: a resume or a lag older than the ring), or by the listener \
             (reader=listener: after connecting, for a notification that carried only a \
             reference or skipped ids, and its once-a-second poll)",
            Unit::Seconds,
            self.catch_up_seconds.clone(),
        );
        r.register(
            "catch_up_read_events",
            "Events each read of a page of pgsse.event returned, by reader",
            self.catch_up_events.clone(),
        );
    }
}

/// Gauges read from the catalog for this scrape, left out if the database did not answer.
fn register_database(r: &mut Registry, figures: Option<&DatabaseFigures>) {
    let Some(figures) = figures else { return };
    r.register(
        "notification_queue_usage",
        "pg_notification_queue_usage(): fraction of the NOTIFY queue in use",
        ConstGauge::new(figures.queue_usage),
    );
    r.register(
        "event_table_bytes_estimate",
        "The planner's estimate of the size of pgsse.event with its indexes, as of its last \
         vacuum or analyze",
        ConstGauge::new(figures.bytes_estimate),
    );
    // Before the table's first vacuum or analyze the planner has no estimate.
    if figures.rows_estimate >= 0.0 {
        r.register(
            "event_table_rows_estimate",
            "The planner's estimate of the events retained in pgsse.event, as of its last \
             vacuum or analyze",
            ConstGauge::new(figures.rows_estimate),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn openmetrics_goes_to_whoever_names_it_and_prometheus_text_to_everyone_else() {
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.3";
        assert_eq!(Format::accepted(Some(prometheus)), Format::OpenMetrics);
        let shouted = "Application/OpenMetrics-Text; version=1.0.0";
        assert_eq!(Format::accepted(Some(shouted)), Format::OpenMetrics);
        assert_eq!(Format::accepted(Some("*/*")), Format::Prometheus);
        assert_eq!(Format::accepted(Some("text/plain")), Format::Prometheus);
        assert_eq!(Format::accepted(None), Format::Prometheus);
    }
}
