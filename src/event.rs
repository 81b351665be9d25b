//! Events as the database records them, and the SSE frames rendered from them.
//!
//! A frame is rendered once per event and shared by every client (`Bytes` clones are reference
//! counts), so the cost of formatting does not grow with the number of clients.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

/// An event as notified by `pgsse.emit` or read from `pgsse.event`.
#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: i64,
    pub kind: String,
    /// Absent when the notification was too large for `pg_notify` and carries only a reference;
    /// the full event is then read from the event table.
    #[serde(default)]
    pub data: Option<Value>,
}

/// One event, rendered as the bytes of an SSE message.
#[derive(Debug)]
pub struct Frame {
    pub id: i64,
    pub kind: Box<str>,
    /// The board the event concerns, for clients that filter by board.
    pub board_id: Option<i64>,
    /// `id: …\nevent: …\ndata: …\n\n`, ready to write.
    pub bytes: Bytes,
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
    pub fn render(id: i64, kind: &str, data: &Value) -> Frame {
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
            kind,
            bytes: Bytes::from(text),
        }
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
