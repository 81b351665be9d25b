//! The exposition: the metrics written in the text format the scraper asked for.
//!
//! The long-lived metrics are registered once, with [`Metrics`]. The values read for a scrape
//! (from the registry of streams, the hub, the database) are registered for that scrape alone,
//! here, so that a figure the scrape could not read is left out rather than reported stale or
//! as zero.

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Metrics;

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
    /// Every metric, with `now`'s figures, in `format`: what this scrape read, then what the
    /// gateway registered once.
    pub fn encode(&self, now: &Snapshot, format: Format) -> String {
        let mut scraped = Registry::with_prefix("pgsse");
        self.register_state(&mut scraped, now);
        register_database(&mut scraped, now.database.as_ref());
        let mut out = String::new();
        // Writing into a String fails only if a metric's own encoding does, which none of these do.
        let written = match format {
            Format::OpenMetrics => text::encode_registry(&mut out, &scraped)
                .and_then(|()| text::encode(&mut out, &self.registry)),
            Format::Prometheus => prometheus_text::encode(&mut out, &scraped)
                .and_then(|()| prometheus_text::encode(&mut out, &self.registry)),
        };
        written.expect("metrics encode into a String");
        out
    }

    /// Gauges of what the gateway holds now, read for this scrape.
    fn register_state(&self, r: &mut Registry, now: &Snapshot) {
        let gauge = |value: i64| ConstGauge::new(value);
        r.register(
            "clients_connected",
            "SSE streams open now",
            gauge(now.clients_connected),
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
