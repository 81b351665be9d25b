//! Whether the gateway is ready, for `/readyz` and `pgsse_listener_up`: whether the listener is
//! LISTENing and has read the event log lately, what it last saw of the notification queue, and
//! why the gateway is not ready if it said.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::Metrics;
use crate::store::events::QueueFill;

/// The longest the listener may go without reading the event log (its once-a-second poll, or a
/// query's deadline after it) before `/readyz` and `pgsse_listener_up` say it is not listening:
/// events may have stopped flowing even though its connection looks up.
pub const LISTENER_SILENCE: Duration = Duration::from_secs(15);

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
}
