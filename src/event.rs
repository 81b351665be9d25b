//! Events as the database records them, and the SSE frames rendered from them.
//!
//! A frame is rendered once per event and shared by every client (`Bytes` clones are reference
//! counts), so the cost of formatting does not grow with the number of clients.

use bytes::Bytes;
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
        matches(&self.user, viewer.user.as_deref())
            && matches(&self.client, Some(&viewer.client_id))
            && matches(&self.session, viewer.session_id.as_deref())
    }
}

/// One event, rendered as the bytes of an SSE message.
#[derive(Debug)]
pub struct Frame {
    pub id: i64,
    pub kind: Box<str>,
    /// The board the event concerns, for clients that filter by board.
    pub board_id: Option<i64>,
    /// Who may receive it; `None` for everyone.
    pub target: Option<Box<Target>>,
    /// `id: …\nevent: …\ndata: …\n\n`, ready to write; empty for a gap.
    pub bytes: Bytes,
    /// Not an event: the events after the last one published up to this frame's id were pruned
    /// before the gateway could read them. Each live client renders its own `resync` for it.
    gap: bool,
}

impl Event {
    /// Parses a notification payload.
    pub fn from_notification(payload: &str) -> Result<Event, serde_json::Error> {
        serde_json::from_str(payload)
    }
}

impl Frame {
    /// Renders an event's SSE message. `data` is written as compact JSON, which never contains a
    /// raw line break, so the message stays one `data:` line whatever the strings hold.
    pub fn render(id: i64, kind: &str, data: &Value, target: Option<Target>) -> Frame {
        // Kinds come from the database's own functions; drop control characters all the same so a
        // stray line break can never split the frame.
        let kind: Box<str> = kind.chars().filter(|c| !c.is_control()).collect();
        let json = serde_json::to_string(data).expect("a JSON value always serializes");
        let mut text = String::with_capacity(json.len() + kind.len() + 40);
        text.push_str("id: ");
        text.push_str(&id.to_string());
        text.push_str("\nevent: ");
        text.push_str(&kind);
        text.push_str("\ndata: ");
        text.push_str(&json);
        text.push_str("\n\n");
        Frame {
            id,
            board_id: data.get("board_id").and_then(Value::as_i64),
            target: target.map(Box::new),
            kind,
            bytes: Bytes::from(text),
            gap: false,
        }
    }

    /// The gap marker for events lost up to `through` (see [`Frame::is_gap`]).
    pub fn gap(through: i64) -> Frame {
        Frame {
            id: through,
            kind: "resync".into(),
            board_id: None,
            target: None,
            bytes: Bytes::new(),
            gap: true,
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
    fn a_frame_is_one_sse_message_with_compact_json() {
        let frame = Frame::render(
            7,
            "newBoard",
            &json!({"board_id": 3, "board_name": "a\r\nb"}),
            None,
        );
        assert_eq!(
            &frame.bytes[..],
            b"id: 7\nevent: newBoard\ndata: {\"board_id\":3,\"board_name\":\"a\\r\\nb\"}\n\n"
        );
        assert_eq!(frame.board_id, Some(3));
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
