//! Which events a stream wants: `?events=newBoard,newPath` and `?board_id=7`, as parsed by the
//! HTTP route. The kinds every stream gets (`connection`, `resync`) are not filtered.

use crate::event::Frame;

/// Which events a stream delivers; the default delivers all.
#[derive(Debug, Default)]
pub struct EventFilter {
    kinds: Option<Vec<String>>,
    board_id: Option<i64>,
}

impl EventFilter {
    /// Only events of these kinds (all when `None`), and only those about this board.
    pub fn new(kinds: Option<Vec<String>>, board_id: Option<i64>) -> EventFilter {
        EventFilter { kinds, board_id }
    }

    /// The filter as JSON, for listings of connected streams; `null` when it lets everything
    /// through (most streams, which so keep no JSON object each).
    pub fn describe(&self) -> serde_json::Value {
        if self.kinds.is_none() && self.board_id.is_none() {
            return serde_json::Value::Null;
        }
        serde_json::json!({ "events": self.kinds, "board_id": self.board_id })
    }

    pub fn accepts(&self, frame: &Frame) -> bool {
        let kind_ok =
            (self.kinds.as_ref()).is_none_or(|kinds| kinds.iter().any(|k| **k == *frame.kind));
        let board_ok = self.board_id.is_none_or(|id| frame.board_id == Some(id));
        kind_ok && board_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_select_by_kind_and_board() {
        let board7 = Frame::render(1, "newBoard", &json!({"board_id": 7}).to_string(), None);
        let path7 = Frame::render(
            2,
            "newPath",
            &json!({"board_id": 7, "path_id": 1}).to_string(),
            None,
        );
        let board8 = Frame::render(3, "newBoard", &json!({"board_id": 8}).to_string(), None);
        let all = EventFilter::default();
        assert!(all.accepts(&board7) && all.accepts(&path7) && all.accepts(&board8));
        let paths = EventFilter::new(Some(vec!["newPath".into()]), None);
        assert!(!paths.accepts(&board7) && paths.accepts(&path7));
        let seven = EventFilter::new(Some(vec!["newBoard".into(), "newPath".into()]), Some(7));
        assert!(seven.accepts(&board7) && seven.accepts(&path7) && !seven.accepts(&board8));
    }
}
