//! Events as the database records them, and the frames the streams send of them.
//!
//! A frame's data is serialised once per event and shared by every client (frames travel as
//! `Arc<Frame>`), so the cost of serialising does not grow with the number of clients.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::value::RawValue;

/// An event as notified by `pgsse.emit` (its signature checked and ignored here).
///
/// Its data stays the text the database wrote: the gateway never needs to understand it, and
/// skipping a raw value takes no recursion, so no depth, size or number in it can stop the
/// listener (serde_json refuses to build a value nested 128 levels deep, and numbers outside an
/// `f64`, both of which `jsonb` accepts).
#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: i64,
    pub kind: String,
    /// Absent when the notification carries only a reference: an event for someone in
    /// particular, or one too large for `pg_notify`. The event is then read from the table.
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
    /// The commit time, in seconds since the epoch (from migration 8 on).
    #[serde(default)]
    pub at: Option<f64>,
    /// The topic of a watched table's event, when its definition gives one (from migration 11 on).
    #[serde(default)]
    pub topic: Option<String>,
}

/// Where the event log stands (or stood): the hub starts from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogPosition {
    /// The newest event id, or the horizon if pruning has emptied the table.
    pub last_id: i64,
    /// Every event with an id at or below this has been deleted by retention.
    pub pruned_through: i64,
}

/// Who a targeted event is for. Every field that is set must match the stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// The usernames it is for, sorted and each once: a stream of any of them matches. Empty when
    /// it names no user.
    pub users: Box<[String]>,
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
    /// A target from the event table's columns (the user of a published event, the users of a
    /// watched table's event); `None` when the event is for everyone.
    pub fn from_columns(
        user: Option<String>,
        users: Option<Vec<String>>,
        client: Option<String>,
        session: Option<String>,
    ) -> Option<Target> {
        let mut users: Vec<String> = users.unwrap_or_default().into_iter().chain(user).collect();
        users.sort_unstable();
        users.dedup();
        let target = Target {
            users: users.into(),
            client,
            session,
        };
        (target != Target::default()).then_some(target)
    }

    /// The bytes it holds, for the hub's accounting.
    pub fn size(&self) -> usize {
        let names: usize = self
            .users
            .iter()
            .map(|u| u.len() + size_of::<String>())
            .sum();
        size_of::<Target>()
            + names
            + self.client.as_ref().map_or(0, String::len)
            + self.session.as_ref().map_or(0, String::len)
    }

    pub fn admits(&self, viewer: &Viewer) -> bool {
        fn matches(wanted: &Option<String>, actual: Option<&str>) -> bool {
            wanted.as_deref().is_none_or(|w| actual == Some(w))
        }
        let by_name_only =
            self.users.is_empty() && (self.client.is_some() || self.session.is_some());
        if viewer.authenticated && by_name_only {
            return false;
        }
        let user_ok = self.users.is_empty()
            || viewer.user.as_deref().is_some_and(|user| {
                (self.users.binary_search_by(|name| name.as_str().cmp(user))).is_ok()
            });
        user_ok
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
    /// The topic a watched table's definition gave it, for clients that filter by topic.
    pub topic: Option<Box<str>>,
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
    /// Renders an event whose data is `json`, the text the database wrote: compacted here, once
    /// for every client, and otherwise passed through as it is.
    pub fn render(id: i64, kind: &str, json: &str, target: Option<Target>) -> Frame {
        // Kinds come from the database's own functions; drop control characters all the same so a
        // stray line break can never split the frame.
        let kind: Box<str> = kind.chars().filter(|c| !c.is_control()).collect();
        let data = compact(json);
        Frame {
            id,
            board_id: board_id(&data),
            topic: None,
            target: target.map(Box::new),
            kind,
            data: data.into(),
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

    /// The frame of an event of this topic.
    pub fn with_topic(mut self, topic: Option<String>) -> Frame {
        self.topic = topic.map(String::into_boxed_str);
        self
    }

    /// Whether the event is of `topic`: the topic its definition gave it, or for an event without
    /// one (the built-in events) the board it concerns.
    pub fn is_of_topic(&self, topic: &str) -> bool {
        match (&self.topic, self.board_id) {
            (Some(own), _) => **own == *topic,
            (None, Some(board)) => topic.parse::<i64>() == Ok(board),
            (None, None) => false,
        }
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
            topic: None,
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

/// `json` without the whitespace between its tokens, so that it is one `data:` line of SSE: the
/// database's text form of `jsonb` puts a space after each `,` and `:`. A line break inside a
/// string (which valid JSON never has raw) is escaped all the same. One pass, no recursion.
pub fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if !in_string {
            match c {
                ' ' | '\t' | '\n' | '\r' => {}
                _ => out.push(c),
            }
            in_string = c == '"';
            continue;
        }
        match c {
            '\n' if escaped => out.push('n'),
            '\r' if escaped => out.push('r'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ => out.push(c),
        }
        in_string = escaped || c != '"';
        escaped = !escaped && c == '\\';
    }
    out
}

/// The board an event's data names at its top level (`"board_id"`), for clients that filter by
/// board. Only that member is looked at; the rest is skipped without being built.
fn board_id(data: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Members<'a> {
        #[serde(borrow)]
        board_id: Option<&'a RawValue>,
    }
    if !data.starts_with('{') {
        return None;
    }
    let members: Members = serde_json::from_str(data).ok()?;
    members.board_id?.get().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_frame_holds_compact_json_on_one_line() {
        let frame = Frame::render(
            7,
            "new\nBoard",
            &json!({"board_id": 3, "board_name": "a\r\nb"}).to_string(),
            None,
        );
        assert_eq!(&*frame.data, r#"{"board_id":3,"board_name":"a\r\nb"}"#);
        assert_eq!(&*frame.kind, "newBoard");
        assert_eq!(frame.board_id, Some(3));
    }

    #[test]
    fn a_published_frame_has_one_first_write_and_a_history_frame_none() {
        let render = || Frame::render(1, "newBoard", "{}", None);
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
            Frame::render(1, "newBoard", "{}", None)
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
        let unknown = Frame::render(1, "newBoard", "{}", None).received_at(Instant::now());
        assert_eq!(unknown.first_write().unwrap().since_commit, None);
    }

    #[test]
    fn data_is_passed_through_compact_whatever_its_depth_and_numbers() {
        let deep = format!(
            "{{\"a\": {}1{}}}",
            "[ ".repeat(100_000),
            " ]".repeat(100_000)
        );
        let notification = format!(r#"{{"id" : 9, "kind" : "x", "data" : {deep}, "sig" : "00"}}"#);
        let event = Event::from_notification(&notification).unwrap();
        let frame = Frame::render(9, "x", event.data.unwrap().get(), None);
        assert_eq!(frame.data.len(), deep.len() - 2 * 100_000 - 1);
        let huge = format!("{{\"board_id\": 1{}, \"n\": -1.5e-400}}", "0".repeat(400));
        let frame = Frame::render(9, "x", &huge, None);
        assert_eq!(&*frame.data, huge.replace(' ', ""));
        assert_eq!(frame.board_id, None);
    }

    #[test]
    fn only_a_top_level_integer_board_id_names_a_board() {
        let board = |data: &str| Frame::render(1, "x", data, None).board_id;
        assert_eq!(board(r#"{"a": {"board_id": 3}, "board_id": 4}"#), Some(4));
        assert_eq!(board(r#"{"a": {"board_id": 3}}"#), None);
        assert_eq!(board(r#"{"board_id": "4"}"#), None);
        assert_eq!(board(r#"[4]"#), None);
        assert_eq!(board(r#"{"board_id": 4, "board_id": 5}"#), None);
    }

    #[test]
    fn a_reference_notification_has_no_data() {
        let event = Event::from_notification(r#"{"id" : 9, "kind" : "newBoard"}"#).unwrap();
        assert_eq!((event.id, event.kind.as_str()), (9, "newBoard"));
        assert!(event.data.is_none());
    }

    /// Any JSON value, nested up to a few levels, with strings that hold line breaks and quotes.
    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z\\\\\"\r\n \t\u{2028}é]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::vec(("[a-z_\" ]{1,6}", inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever the whitespace between its tokens, data comes out as serde_json's compact
        /// form of the same value: one line, the same members in the same order.
        #[test]
        fn compacting_pretty_json_gives_the_compact_json_of_the_same_value(value in json_value()) {
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            proptest::prop_assert_eq!(compact(&pretty), serde_json::to_string(&value).unwrap());
        }

        /// No notification, signed or not, well formed or not, makes the decoder panic, and no
        /// data makes a frame of more than one line.
        #[test]
        fn any_notification_decodes_or_is_refused_and_any_data_renders_on_one_line(
            payload in "\\PC{0,64}|\\{\"id\" : [0-9]{1,20}, \"kind\" : \"[a-z]{0,4}\", \"data\" : [\\[\\]{}\":, 0-9a-z\r\n\\\\]{0,64}\\}"
        ) {
            if let Ok(Event { id, kind, data: Some(data), .. }) = Event::from_notification(&payload) {
                let frame = Frame::render(id, &kind, data.get(), None);
                proptest::prop_assert!(!frame.data.contains(['\r', '\n']));
            }
            let frame = Frame::render(1, "x", &payload, None);
            proptest::prop_assert!(!frame.data.contains(['\r', '\n']));
        }
    }
}
