//! Per-stream filters: `?events=newBoard,newPath` and `?board_id=7`.
//!
//! `events` takes the gateway's own kinds and any custom kind published with `pgsse.publish` or
//! the `notification` table; the kinds every stream gets (`connection`, `resync`) cannot be
//! filtered.

use super::error::ApiError;
use super::params::{self, Query};
use crate::event::Frame;

/// The gateway's own event kinds.
pub const KINDS: &[&str] = &["newBoard", "newPath"];

/// Which events a stream delivers; the default delivers all.
#[derive(Debug, Default)]
pub struct EventFilter {
    kinds: Option<Vec<String>>,
    board_id: Option<i64>,
}

impl EventFilter {
    /// Reads `events` and `board_id` from a query string. An empty value means no filter.
    pub fn from_query(query: &Query) -> Result<EventFilter, ApiError> {
        let kinds = match params::get(query, "events").map(str::trim) {
            None | Some("") => None,
            Some(list) => Some(
                list.split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(kind)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let board_id = match params::get(query, "board_id").map(str::trim) {
            None | Some("") => None,
            Some(value) => Some(board_id(value)?),
        };
        Ok(EventFilter { kinds, board_id })
    }

    /// The filter as JSON, for listings of connected streams.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "events": self.kinds, "board_id": self.board_id })
    }

    pub fn accepts(&self, frame: &Frame) -> bool {
        let kind_ok =
            (self.kinds.as_ref()).is_none_or(|kinds| kinds.iter().any(|k| **k == *frame.kind));
        let board_ok = self.board_id.is_none_or(|id| frame.board_id == Some(id));
        kind_ok && board_ok
    }
}

/// An event name a stream may filter on: one of [`KINDS`], or a custom kind.
fn kind(name: &str) -> Result<String, ApiError> {
    let custom = name.len() <= 64
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
             64 letters, digits, '.', '_' or '-'"
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
    use serde_json::json;

    fn query(pairs: &[(&str, &str)]) -> Query {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filters_select_by_kind_and_board() {
        let board7 = Frame::render(1, "newBoard", &json!({"board_id": 7}), None);
        let path7 = Frame::render(2, "newPath", &json!({"board_id": 7, "path_id": 1}), None);
        let board8 = Frame::render(3, "newBoard", &json!({"board_id": 8}), None);
        let all = EventFilter::from_query(&query(&[("events", "")])).unwrap();
        assert!(all.accepts(&board7) && all.accepts(&path7) && all.accepts(&board8));
        let paths = EventFilter::from_query(&query(&[("events", "newPath")])).unwrap();
        assert!(!paths.accepts(&board7) && paths.accepts(&path7));
        let seven = EventFilter::from_query(&query(&[
            ("board_id", "7"),
            ("events", "newBoard, newPath"),
        ]))
        .unwrap();
        assert!(seven.accepts(&board7) && seven.accepts(&path7) && !seven.accepts(&board8));
    }

    #[test]
    fn unknown_names_and_bad_board_ids_are_rejected_with_the_allowed_values() {
        for bad in ["newBoard,bad name", "resync", "x!"] {
            let err = EventFilter::from_query(&query(&[("events", bad)])).unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains("allowed: newBoard, newPath, or a custom kind"),
                "{message}"
            );
        }
        assert!(EventFilter::from_query(&query(&[("events", "message,system.notice")])).is_ok());
        for bad in ["x", "-3", "1.5", "0"] {
            let err = EventFilter::from_query(&query(&[("board_id", bad)])).unwrap_err();
            assert!(
                err.to_string().starts_with("board_id must be"),
                "{bad}: {err}"
            );
        }
    }
}
