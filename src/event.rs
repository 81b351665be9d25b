//! Events as the database records them, and the frames the streams send of them.
//!
//! A frame's data is serialised once per event and shared by every client (frames travel as
//! `Arc<Frame>`), so the cost of serialising does not grow with the number of clients.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::Value;

/// An event as notified by `pgsse.emit` (its signature checked and ignored here).
#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: i64,
    pub kind: String,
    /// Absent when the notification carries only a reference: an event for someone in
    /// particular, or one too large for `pg_notify`. The event is then read from the table.
    #[serde(default)]
    pub data: Option<Value>,
    /// The commit time, in seconds since the epoch (from migration 8 on).
    #[serde(default)]
    pub at: Option<f64>,
}

/// Who a targeted event is for. Every field that is set must match the stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// A username.
    pub user: Option<String>,
    /// A stream's `clientId`.
    pub client: Option<String>,
    /// A stream's `sessionId`.
    pub session: Option<String>,
}

/// Who is listening on a stream.
#[derive(Clone, Debug, Default)]
pub struct Viewer {
    /// The authenticated username (or, without authentication, the `userId` the stream gave).
    pub user: Option<String>,
    pub client_id: String,
    pub session_id: Option<String>,
    /// Whether `user` comes from a verified token. Then a stream's clientId and sessionId are
    /// its user's own: an event for a client or session reaches only the streams of the user it
    /// names, and one that names no user reaches nobody (another user may declare the same
    /// clientId).
    pub authenticated: bool,
}

impl Target {
    /// A target from the event table's columns; `None` when the event is for everyone.
    pub fn from_columns(
        user: Option<String>,
        client: Option<String>,
        session: Option<String>,
    ) -> Option<Target> {
        let target = Target {
            user,
            client,
            session,
        };
        (target != Target::default()).then_some(target)
    }

    pub fn admits(&self, viewer: &Viewer) -> bool {
        fn matches(wanted: &Option<String>, actual: Option<&str>) -> bool {
            wanted.as_deref().is_none_or(|w| actual == Some(w))
        }
        let by_name_only = self.user.is_none() && (self.client.is_some() || self.session.is_some());
        if viewer.authenticated && by_name_only {
            return false;
        }
        matches(&self.user, viewer.user.as_deref())
            && matches(&self.client, Some(&viewer.client_id))
            && matches(&self.session, viewer.session_id.as_deref())
    }
}

/// How long an event took to its first write to a client.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FirstWrite {
    /// Since the listener received it.
    pub since_received: Duration,
    /// Since it committed, the database's clock against the gateway's; `None` when its commit
    /// time is not known.
    pub since_commit: Option<Duration>,
}

/// One event, ready to send: its id, its kind, and its data as compact JSON.
#[derive(Debug)]
pub struct Frame {
    pub id: i64,
    pub kind: Box<str>,
    /// The board the event concerns, for clients that filter by board.
    pub board_id: Option<i64>,
    /// Who may receive it; `None` for everyone.
    pub target: Option<Box<Target>>,
    /// The data as compact JSON, which never holds a raw line break, so it is one `data:` line
    /// of SSE whatever its strings hold; empty for a gap.
    pub data: Box<str>,
    /// Not an event: the events after the last one published up to this frame's id were pruned
    /// before the gateway could read them. Each live client renders its own `resync` for it.
    gap: bool,
    /// When the listener received the event, for a frame it publishes; `None` for a frame read
    /// for one stream's history, whose first write is not the event's.
    received: Option<Instant>,
    /// When the event committed, by the database's clock, if known.
    committed: Option<SystemTime>,
    /// Whether a stream has handed this frame to a client yet (see [`Frame::first_write`]).
    written: AtomicBool,
}

impl Event {
    /// Parses a notification payload.
    pub fn from_notification(payload: &str) -> Result<Event, serde_json::Error> {
        serde_json::from_str(payload)
    }
}

impl Frame {
    /// Renders an event: `data` is serialised here, once for every client.
    pub fn render(id: i64, kind: &str, data: &Value, target: Option<Target>) -> Frame {
        // Kinds come from the database's own functions; drop control characters all the same so a
        // stray line break can never split the frame.
        let kind: Box<str> = kind.chars().filter(|c| !c.is_control()).collect();
        let json = serde_json::to_string(data).expect("a JSON value always serializes");
        Frame {
            id,
            board_id: data.get("board_id").and_then(Value::as_i64),
            target: target.map(Box::new),
            kind,
            data: json.into(),
            gap: false,
            received: None,
            committed: None,
            written: AtomicBool::new(false),
        }
    }

    /// The frame of an event that committed `secs` seconds after the epoch.
    pub fn committed_at(mut self, secs: Option<f64>) -> Frame {
        self.committed = secs
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .map(|since_epoch| SystemTime::UNIX_EPOCH + since_epoch);
        self
    }

    /// The frame, marked as received by the listener at `received`.
    pub fn received_at(mut self, received: Instant) -> Frame {
        self.received = Some(received);
        self
    }

    /// How long after the listener received it a stream hands this frame to a client for the
    /// first time: `Some` for exactly one call per published frame, whichever stream makes it,
    /// and `None` for every later one. Once the flag is set, later calls only read it, so the
    /// streams that follow share its cache line instead of taking it in turns.
    pub fn first_write(&self) -> Option<FirstWrite> {
        let received = self.received?;
        if self.written.load(Relaxed) || self.written.swap(true, Relaxed) {
            return None;
        }
        Some(FirstWrite {
            since_received: received.elapsed(),
            // A database clock ahead of the gateway's would make it negative: then it is unknown.
            since_commit: self
                .committed
                .and_then(|c| SystemTime::now().duration_since(c).ok()),
        })
    }

    /// The gap marker for events lost up to `through` (see [`Frame::is_gap`]).
    pub fn gap(through: i64) -> Frame {
        Frame {
            id: through,
            kind: "resync".into(),
            board_id: None,
            target: None,
            data: "".into(),
            gap: true,
            received: None,
            committed: None,
            written: AtomicBool::new(false),
        }
    }

    /// Whether this frame marks events that were pruned before they could be delivered.
    pub fn is_gap(&self) -> bool {
        self.gap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_frame_holds_compact_json_on_one_line() {
        let frame = Frame::render(
            7,
            "new\nBoard",
            &json!({"board_id": 3, "board_name": "a\r\nb"}),
            None,
        );
        assert_eq!(&*frame.data, r#"{"board_id":3,"board_name":"a\r\nb"}"#);
        assert_eq!(&*frame.kind, "newBoard");
        assert_eq!(frame.board_id, Some(3));
    }

    #[test]
    fn a_published_frame_has_one_first_write_and_a_history_frame_none() {
        let render = || Frame::render(1, "newBoard", &json!({}), None);
        let published = render().received_at(Instant::now());
        let writes = (0..3).filter(|_| published.first_write().is_some()).count();
        assert_eq!(writes, 1);
        assert_eq!(render().first_write(), None);
    }

    #[test]
    fn the_delay_since_commit_is_known_unless_the_commit_is_in_the_future() {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        let committed = |secs: f64| {
            Frame::render(1, "newBoard", &json!({}), None)
                .committed_at(Some(secs))
                .received_at(Instant::now())
                .first_write()
                .unwrap()
                .since_commit
        };
        let past = committed(now.as_secs_f64() - 2.0).unwrap();
        assert!(
            past >= Duration::from_secs(2) && past < Duration::from_secs(60),
            "{past:?}"
        );
        assert_eq!(committed(now.as_secs_f64() + 60.0), None);
        let unknown = Frame::render(1, "newBoard", &json!({}), None).received_at(Instant::now());
        assert_eq!(unknown.first_write().unwrap().since_commit, None);
    }

    #[test]
    fn a_reference_notification_has_no_data() {
        let event = Event::from_notification(r#"{"id" : 9, "kind" : "newBoard"}"#).unwrap();
        assert_eq!(
            (event.id, event.kind.as_str(), event.data),
            (9, "newBoard", None)
        );
    }
}
