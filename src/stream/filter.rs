//! Which events a stream wants: `?events=newBoard,newPath`, `?board_id=7` and `?topic=t`, as
//! parsed by the HTTP route. The kinds every stream gets (`connection`, `resync`) are not filtered.

use crate::event::Frame;

/// Which events a stream delivers; the default delivers all.
#[derive(Debug, Default)]
pub struct EventFilter {
    kinds: Option<Vec<String>>,
    board_id: Option<i64>,
    topic: Option<Box<str>>,
}

impl EventFilter {
    /// Only events of these kinds (all when `None`), and only those about this board.
    pub fn new(kinds: Option<Vec<String>>, board_id: Option<i64>) -> EventFilter {
        EventFilter {
            kinds,
            board_id,
            topic: None,
        }
    }

    /// The filter, keeping only events of `topic` too (see [`Frame::is_of_topic`]).
    pub fn with_topic(mut self, topic: Option<String>) -> EventFilter {
        self.topic = topic.map(String::into_boxed_str);
        self
    }

    /// The filter as JSON, for listings of connected streams; `null` when it lets everything
    /// through (most streams, which so keep no JSON object each).
    pub fn describe(&self) -> serde_json::Value {
        if self.kinds.is_none() && self.board_id.is_none() && self.topic.is_none() {
            return serde_json::Value::Null;
        }
        serde_json::json!({ "events": self.kinds, "board_id": self.board_id, "topic": self.topic })
    }

    pub fn accepts(&self, frame: &Frame) -> bool {
        let kind_ok =
            (self.kinds.as_ref()).is_none_or(|kinds| kinds.iter().any(|k| **k == *frame.kind));
        let board_ok = self.board_id.is_none_or(|id| frame.board_id == Some(id));
        let topic_ok = (self.topic.as_deref()).is_none_or(|topic| frame.is_of_topic(topic));
        kind_ok && board_ok && topic_ok
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

    #[test]
    fn a_topic_is_the_one_an_event_was_given_or_else_its_board() {
        let order = |id, topic: &str| {
            Frame::render(id, "order", &json!({"op": "insert"}).to_string(), None)
                .with_topic(Some(topic.into()))
        };
        let (store7, store8) = (order(1, "7"), order(2, "8"));
        let board7 = Frame::render(3, "newBoard", &json!({"board_id": 7}).to_string(), None);
        let untopical = Frame::render(4, "order", &json!({"board_id": "x"}).to_string(), None);
        let seven = EventFilter::default().with_topic(Some("7".into()));
        assert!(seven.accepts(&store7) && seven.accepts(&board7));
        assert!(!seven.accepts(&store8) && !seven.accepts(&untopical));
        let orders_of_seven =
            EventFilter::new(Some(vec!["order".into()]), None).with_topic(Some("7".into()));
        assert!(orders_of_seven.accepts(&store7) && !orders_of_seven.accepts(&board7));
    }
}
