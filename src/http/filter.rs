//! Per-stream filters from the query string: `?events=newBoard,newPath`, `?board_id=7` and
//! `?topic=store-12`.
//!
//! `events` takes the gateway's own kinds and any custom kind published with `pgsse.publish` or
//! the `notification` table; the kinds every stream gets (`connection`, `resync`) cannot be
//! filtered.

use super::error::ApiError;
use crate::stream::EventFilter;

/// The gateway's own event kinds.
pub const KINDS: &[&str] = &["newBoard", "newPath"];
/// The most names `?events=` may list: far beyond what a page listens for, and a bound on what
/// one request makes its stream hold for its whole life (the filter, and its listing in
/// `/api/sse/clients`).
pub const MAX_EVENT_NAMES: usize = 64;
/// The longest custom kind, as `pgsse.publish` takes them.
const MAX_NAME_LEN: usize = 64;
/// The longest topic a stream may filter on.
pub const MAX_TOPIC_CHARS: usize = 200;

/// Reads the values of `events`, `board_id` and `topic`, if given. An empty value means no
/// filter.
pub fn parse(
    events: Option<&str>,
    board_id: Option<&str>,
    topic: Option<&str>,
) -> Result<EventFilter, ApiError> {
    let kinds = match events.map(str::trim) {
        None | Some("") => None,
        Some(list) => Some(kinds(list)?),
    };
    let board_id = match board_id.map(str::trim) {
        None | Some("") => None,
        Some(value) => Some(self::board_id(value)?),
    };
    let topic = match topic {
        None | Some("") => None,
        Some(value) => Some(self::topic(value)?),
    };
    Ok(EventFilter::new(kinds, board_id).with_topic(topic))
}

/// A topic, as the stream compares it with events' topics: exactly the text given (no trimming,
/// since a topic is the text of a value of the application's), of at most [`MAX_TOPIC_CHARS`]
/// characters.
fn topic(value: &str) -> Result<String, ApiError> {
    if value.chars().count() > MAX_TOPIC_CHARS {
        return Err(ApiError::bad_request(
            "topic",
            format!("topic is at most {MAX_TOPIC_CHARS} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// The names of a comma-separated list, at most [`MAX_EVENT_NAMES`] of them.
fn kinds(list: &str) -> Result<Vec<String>, ApiError> {
    // Counted before anything is kept of them.
    let names = || {
        list.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
    };
    let given = names().count();
    if given > MAX_EVENT_NAMES {
        return Err(ApiError::bad_request(
            "events",
            format!("events lists {given} names; a stream may filter on at most {MAX_EVENT_NAMES}"),
        ));
    }
    names().map(kind).collect()
}

/// An event name a stream may filter on: one of [`KINDS`], or a custom kind.
fn kind(name: &str) -> Result<String, ApiError> {
    let custom = name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !["connection", "resync"].contains(&name);
    if KINDS.contains(&name) || custom {
        return Ok(name.to_owned());
    }
    let allowed = KINDS.join(", ");
    Err(ApiError::bad_request(
        "events",
        format!(
            "events: {name:?} is not an event name; allowed: {allowed}, or a custom kind of 1 to \
             {MAX_NAME_LEN} letters, digits, '.', '_' or '-'"
        ),
    ))
}

fn board_id(value: &str) -> Result<i64, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                "board_id",
                format!("board_id must be a board id (a positive whole number), got {value:?}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_query(pairs: &[(&str, &str)]) -> Result<EventFilter, ApiError> {
        let value = |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        parse(value("events"), value("board_id"), value("topic"))
    }

    #[test]
    fn unknown_names_and_bad_board_ids_are_rejected_with_the_allowed_values() {
        for bad in ["newBoard,bad name", "resync", "x!"] {
            let err = from_query(&[("events", bad)]).unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains("allowed: newBoard, newPath, or a custom kind"),
                "{message}"
            );
        }
        assert!(from_query(&[("events", "message,system.notice")]).is_ok());
        let names = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(from_query(&[("events", &names(MAX_EVENT_NAMES))]).is_ok());
        let err = from_query(&[("events", &names(MAX_EVENT_NAMES + 1))]).unwrap_err();
        assert!(err.to_string().contains("at most 64"), "{err}");
        for bad in ["x", "-3", "1.5", "0"] {
            let err = from_query(&[("board_id", bad)]).unwrap_err();
            assert!(
                err.to_string().starts_with("board_id must be"),
                "{bad}: {err}"
            );
        }
        assert!(from_query(&[("topic", &"t".repeat(MAX_TOPIC_CHARS))]).is_ok());
        let err = from_query(&[("topic", &"t".repeat(MAX_TOPIC_CHARS + 1))]).unwrap_err();
        assert!(err.to_string().contains("at most 200"), "{err}");
    }
}
