//! How long things take: from an event to its first write to a client, and each read of a page
//! of the event log, by who read it.

use std::time::Duration;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use super::{Metrics, Register};
use crate::event::FirstWrite;

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

/// The histograms, registered with the other metrics.
pub(super) struct Latency {
    commit_to_first_write: Histogram,
    first_write: Histogram,
    catch_up_seconds: ByReader,
    catch_up_events: ByReader,
}

impl Latency {
    pub(super) fn registered(r: &mut Register) -> Latency {
        let latency = Latency {
            commit_to_first_write: r.seconds(
                "commit_to_first_write",
                "Seconds from an event's commit in PostgreSQL (by the database's clock, carried \
                 by its notification or read from pgsse.event) to the first stream handing its \
                 frame to a client connection (by the gateway's clock); once per event, for \
                 events some client receives. On different machines it is only as right as their \
                 clocks agree",
                Histogram::new(DELAY_BUCKETS),
            ),
            first_write: r.seconds(
                "received_to_first_write",
                "Seconds from the listener receiving an event from PostgreSQL (its notification, \
                 or the read of pgsse.event that found it) to the first stream handing its frame \
                 to a client connection; once per event, for events some client receives: the \
                 gateway's own part of pgsse_commit_to_first_write_seconds, by its clock alone",
                Histogram::new(DELAY_BUCKETS),
            ),
            catch_up_seconds: r.seconds(
                "catch_up_read",
                "Seconds each read of a page of pgsse.event took: by a stream catching up \
                 (reader=stream: a resume or a lag older than the ring), or by the listener \
                 (reader=listener: after connecting, for a notification that carried only a \
                 reference or skipped ids, and its once-a-second poll)",
                Family::new_with_constructor(|| Histogram::new(READ_BUCKETS)),
            ),
            catch_up_events: r.add(
                "catch_up_read_events",
                "Events each read of a page of pgsse.event returned, by reader",
                Family::new_with_constructor(|| Histogram::new(ROWS_BUCKETS)),
            ),
        };
        // Both readers' series exist from the start, at zero, so that rates work from the first
        // scrape.
        for reader in [ReadBy::Stream, ReadBy::Listener] {
            drop(latency.catch_up_seconds.get_or_create(&reader.label()));
            drop(latency.catch_up_events.get_or_create(&reader.label()));
        }
        latency
    }
}

impl Metrics {
    /// Records a stream handing an event to a client for the first time.
    pub fn first_write(&self, delay: FirstWrite) {
        self.latency
            .first_write
            .observe(delay.since_received.as_secs_f64());
        if let Some(since_commit) = delay.since_commit {
            self.latency
                .commit_to_first_write
                .observe(since_commit.as_secs_f64());
        }
    }

    /// Records a read of a page of `pgsse.event` that took `took` and returned `events`.
    pub fn catch_up_read(&self, reader: ReadBy, took: Duration, events: usize) {
        let label = reader.label();
        let seconds = self.latency.catch_up_seconds.get_or_create(&label);
        seconds.observe(took.as_secs_f64());
        self.latency
            .catch_up_events
            .get_or_create(&label)
            .observe(events as f64);
    }
}
