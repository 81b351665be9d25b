//! A stream's messages as warp's SSE support writes them: events (named by their kind, or in an
//! envelope), id-only positions, the gateway's own `connection` and `resync` events, and
//! comments. No state: the cursor decides what to send, this says how it is written.

use std::time::{Duration, SystemTime};

use serde_json::json;
use warp::sse::Event;

use super::OPENING_EVENTS;
use crate::event::{Frame, Viewer};
use crate::registry;

/// How long a browser waits before reconnecting, sent first on every stream.
const RETRY: Duration = Duration::from_millis(2000);

/// An event's message, as a stream that asked for envelopes (`?envelope=1`) or not gets it.
pub(super) fn frame(frame: &Frame, envelope: bool) -> Event {
    match envelope {
        true => enveloped(frame),
        false => event(frame),
    }
}

/// An event's SSE message. The data was serialised once for every client; warp's `Event` owns
/// its fields, so each client's message copies it.
pub(super) fn event(frame: &Frame) -> Event {
    Event::default()
        .id(frame.id.to_string())
        .event(&*frame.kind)
        .data(&*frame.data)
}

/// An event's SSE message for a stream that asked for envelopes (`?envelope=1`): unnamed, so
/// that a browser's `EventSource` hands every kind to `onmessage`, with the name in the data:
/// `{"kind":…,"data":…}`. Only such streams pay for the copy this makes.
fn enveloped(frame: &Frame) -> Event {
    let kind = serde_json::to_string(&*frame.kind).expect("a string always serializes");
    Event::default()
        .id(frame.id.to_string())
        .data(format!("{{\"kind\":{kind},\"data\":{}}}", frame.data))
}

/// A message that moves the client's Last-Event-ID to `id` and dispatches nothing.
pub(super) fn position(id: i64) -> Event {
    Event::default().id(id.to_string())
}

/// One of the gateway's own events (`connection`, `resync`), named, or in its envelope.
fn named(kind: &str, data: serde_json::Value, envelope: bool) -> Event {
    if envelope {
        Event::default().data(json!({ "kind": kind, "data": data }).to_string())
    } else {
        Event::default().event(kind).data(data.to_string())
    }
}

/// The stream's first events. The first carries the stream's position, the id it starts after,
/// without data: a browser dispatches nothing for it but takes the id as its Last-Event-ID, so
/// a stream cut before its first event resumes from where it began instead of starting live
/// again and missing what committed meanwhile (a live stream opened before the database was
/// reached has no position yet: `None`). Then `event: connection`: who the stream is for (and
/// whether a token said so), the newest event id the gateway knows (so a page can tell the
/// events it missed from live ones) and the server's time, as apps built for NestJS-style SSE
/// modules expect. It has no id of its own.
pub(super) fn opening(
    position: Option<i64>,
    viewer: &Viewer,
    newest_id: Option<i64>,
    envelope: bool,
) -> [Event; OPENING_EVENTS] {
    let mut first = Event::default().retry(RETRY).comment(" pgsse stream open");
    if let Some(id) = position {
        first = first.id(id.to_string());
    }
    let data = json!({
        "client_id": viewer.client_id,
        "user": viewer.user,
        "session_id": viewer.session_id,
        "authenticated": viewer.authenticated,
        "newest_id": newest_id,
        "server_time": registry::rfc3339(SystemTime::now()),
    });
    [first, named("connection", data, envelope)]
}

/// The `resync` event for a client after `cursor`, older than what is retained: it resumes
/// after `pruned_through`.
pub(super) fn resync(cursor: i64, pruned_through: i64, envelope: bool) -> Event {
    let data = json!({
        "reason": "pruned",
        "message": format!(
            "events after {cursor} up to {pruned_through} are no longer retained; refetch your state"
        ),
        "last_event_id": cursor,
        "resumes_after": pruned_through,
    });
    named("resync", data, envelope).id(pruned_through.to_string())
}

/// The comment a stream gets while history cannot be read, each time it tries again.
pub(super) fn waiting_for_database() -> Event {
    Event::default().comment(" waiting for the database to replay history")
}
