//! Per-stream filters: `?events=newBoard,newPath` and `?board_id=7`.

use super::error::ApiError;
use super::params::{self, Query};
use crate::event::Frame;

/// Event names a stream can be filtered on.
pub const KINDS: &[&str] = &["newBoard", "newPath"];

/// Which events a stream delivers; the default delivers all.
#[derive(Debug, Default)]
pub struct EventFilter {
    kinds: Option<Vec<&'static str>>,
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
        let board_id =
            match params::get(query, "board_id").map(str::trim) {
                None | Some("") => None,
                Some(value) => Some(value.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(
                    || {
                        ApiError::bad_request(
                    "board_id",
                    format!("board_id must be a board id (a positive whole number), got {value:?}"),
                )
                    },
                )?),
            };
        Ok(EventFilter { kinds, board_id })
    }

    pub fn accepts(&self, frame: &Frame) -> bool {
        let kind_ok = self
            .kinds
            .as_ref()
            .is_none_or(|kinds| kinds.contains(&&*frame.kind));
        let board_ok = self.board_id.is_none_or(|id| frame.board_id == Some(id));
        kind_ok && board_ok
    }
}

fn kind(name: &str) -> Result<&'static str, ApiError> {
    KINDS.iter().copied().find(|k| *k == name).ok_or_else(|| {
        ApiError::bad_request(
            "events",
            format!(
                "events: unknown event name {name:?}; allowed: {}",
                KINDS.join(", ")
            ),
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
        let board7 = Frame::render(1, "newBoard", &json!({"board_id": 7}));
        let path7 = Frame::render(2, "newPath", &json!({"board_id": 7, "path_id": 1}));
        let board8 = Frame::render(3, "newBoard", &json!({"board_id": 8}));
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
        let err = EventFilter::from_query(&query(&[("events", "newBoard,nope")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "events: unknown event name \"nope\"; allowed: newBoard, newPath"
        );
        for bad in ["x", "-3", "1.5", "0"] {
            let err = EventFilter::from_query(&query(&[("board_id", bad)])).unwrap_err();
            assert!(
                err.to_string().starts_with("board_id must be"),
                "{bad}: {err}"
            );
        }
    }
}
