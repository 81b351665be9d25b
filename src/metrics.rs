//! Counters and gauges shared by the listener, the streams and `/metrics`. Plain atomics: each
//! update is one instruction and never waits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

pub struct Metrics {
    started: Instant,
    /// Whether the listener is connected and LISTENing; `/readyz` reports it.
    listening: AtomicBool,
    /// Why the gateway is not ready (the database cannot be reached, the listener reconnects),
    /// for `/readyz`. A std mutex: it is set on failures and read by probes, never held across
    /// an await.
    not_ready: Mutex<Option<String>>,
    /// Events the listener took from PostgreSQL and published (each counted once).
    pub events_received: AtomicU64,
    pub notifications_received: AtomicU64,
    /// Notifications dropped because the gateway's functions did not sign them.
    pub notifications_rejected: AtomicU64,
    /// Milliseconds after `started` at which the last notification arrived; 0 if none yet.
    last_notification_ms: AtomicU64,
    pub frames_delivered: AtomicU64,
    pub replayed_from_ring: AtomicU64,
    pub replayed_from_table: AtomicU64,
    pub lag_resyncs: AtomicU64,
    pub forced_disconnects: AtomicU64,
    pub listener_reconnects: AtomicU64,
    /// Stream requests refused because MAX_CONNECTIONS were open.
    pub streams_refused: AtomicU64,
    /// HTTP connections open now, streams included.
    pub connections_open: AtomicU64,
    /// MAX_CONNECTIONS as the server applies it.
    pub connections_max: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            started: Instant::now(),
            listening: AtomicBool::new(false),
            not_ready: Mutex::new(Some("waiting for the database".to_owned())),
            events_received: AtomicU64::new(0),
            notifications_received: AtomicU64::new(0),
            notifications_rejected: AtomicU64::new(0),
            last_notification_ms: AtomicU64::new(0),
            frames_delivered: AtomicU64::new(0),
            replayed_from_ring: AtomicU64::new(0),
            replayed_from_table: AtomicU64::new(0),
            lag_resyncs: AtomicU64::new(0),
            forced_disconnects: AtomicU64::new(0),
            listener_reconnects: AtomicU64::new(0),
            streams_refused: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connections_max: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Relaxed);
        if listening {
            *self.lock_not_ready() = None;
        }
    }

    /// Records why the gateway is not ready, for `/readyz`.
    pub fn set_not_ready(&self, why: String) {
        *self.lock_not_ready() = Some(why);
    }

    /// Why the gateway is not ready, if it said.
    pub fn not_ready(&self) -> Option<String> {
        self.lock_not_ready().clone()
    }

    fn lock_not_ready(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.not_ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_listening(&self) -> bool {
        self.listening.load(Relaxed)
    }

    pub fn notification_received(&self) {
        self.notifications_received.fetch_add(1, Relaxed);
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
}

/// Adds one to a counter.
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}
