//! The in-memory fan-out: a broadcast channel of shared frames, and a ring of recent ones.
//!
//! Invariants: the hub does no I/O and never waits on a client, so publishing costs the same with
//! one client or ten thousand. Frames are published in strictly increasing id order (the listener
//! is the only publisher). Every published event with an id above [`Position::floor`] is in the
//! ring; older ones must be read from the event table.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::event::Frame;

pub struct Hub {
    sender: broadcast::Sender<Arc<Frame>>,
    // A std mutex: every critical section is a few pointer copies and never awaits.
    recent: Mutex<Recent>,
}

struct Recent {
    frames: VecDeque<Arc<Frame>>,
    capacity: usize,
    position: Position,
}

/// Where the hub stands in the event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The id of the last event published (or, before the first, of the last event in the table
    /// when the gateway started).
    pub last_id: i64,
    /// Every event with an id above this that has been published is still in the ring.
    pub floor: i64,
}

/// What a client needs to go live: its receiver and the id it starts after.
pub struct Subscription {
    pub receiver: broadcast::Receiver<Arc<Frame>>,
    /// The last id published when the receiver was created: every later event reaches the
    /// receiver (unless it lags), every earlier one is in the ring or the table.
    pub last_id: i64,
}

impl Hub {
    /// A hub positioned after event `start_id` (the newest in the table at startup).
    pub fn new(broadcast_capacity: usize, ring_capacity: usize, start_id: i64) -> Hub {
        let (sender, _) = broadcast::channel(broadcast_capacity);
        Hub {
            sender,
            recent: Mutex::new(Recent {
                frames: VecDeque::with_capacity(ring_capacity.min(1024)),
                capacity: ring_capacity,
                position: Position {
                    last_id: start_id,
                    floor: start_id,
                },
            }),
        }
    }

    /// Sends a frame to every subscriber and keeps it in the ring. Frames whose id is not above
    /// the last published one are ignored, so the caller may offer the same event twice.
    pub fn publish(&self, frame: Frame) -> bool {
        let frame = Arc::new(frame);
        let mut recent = self.lock();
        if frame.id <= recent.position.last_id {
            return false;
        }
        recent.position.last_id = frame.id;
        if recent.frames.len() == recent.capacity {
            if let Some(evicted) = recent.frames.pop_front() {
                recent.position.floor = evicted.id;
            }
        }
        recent.frames.push_back(frame.clone());
        // Sent under the lock so that `subscribe` sees either the frame in `last_id` or the frame
        // in its receiver, never neither. An error only means nobody is listening.
        let _ = self.sender.send(frame);
        true
    }

    /// A receiver for live frames, and the id it starts after.
    pub fn subscribe(&self) -> Subscription {
        let recent = self.lock();
        Subscription {
            receiver: self.sender.subscribe(),
            last_id: recent.position.last_id,
        }
    }

    pub fn position(&self) -> Position {
        self.lock().position
    }

    /// Up to `limit` ring frames with ids above `after`, oldest first; `None` when the ring no
    /// longer holds every event after `after` (the caller reads the table instead).
    pub fn frames_after(&self, after: i64, limit: usize) -> Option<Vec<Arc<Frame>>> {
        let recent = self.lock();
        if after < recent.position.floor {
            return None;
        }
        let start = recent.frames.partition_point(|f| f.id <= after);
        Some(recent.frames.range(start..).take(limit).cloned().collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        // A panic while holding the lock cannot leave `Recent` half-updated in a harmful way.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(id: i64) -> Frame {
        Frame::render(id, "newBoard", &json!({ "board_id": id }), None)
    }

    #[test]
    fn a_subscriber_gets_what_is_published_after_it_subscribed() {
        let hub = Hub::new(8, 8, 10);
        hub.publish(frame(11));
        let mut sub = hub.subscribe();
        assert_eq!(sub.last_id, 11);
        hub.publish(frame(12));
        assert_eq!(sub.receiver.try_recv().unwrap().id, 12);
        assert!(sub.receiver.try_recv().is_err());
    }

    #[test]
    fn an_event_offered_twice_is_published_once() {
        let hub = Hub::new(8, 8, 0);
        let mut sub = hub.subscribe();
        assert!(hub.publish(frame(1)));
        assert!(!hub.publish(frame(1)));
        assert_eq!(sub.receiver.try_recv().unwrap().id, 1);
        assert!(sub.receiver.try_recv().is_err());
    }

    #[test]
    fn the_ring_answers_only_while_it_holds_everything_after_the_cursor() {
        let hub = Hub::new(8, 3, 0);
        for id in 1..=5 {
            hub.publish(frame(id));
        }
        // The ring holds 3, 4, 5; event 2 was evicted, so the floor is 2.
        assert_eq!(
            hub.position(),
            Position {
                last_id: 5,
                floor: 2
            }
        );
        let ids = |v: Vec<Arc<Frame>>| v.iter().map(|f| f.id).collect::<Vec<_>>();
        assert_eq!(hub.frames_after(2, 10).map(ids), Some(vec![3, 4, 5]));
        assert_eq!(hub.frames_after(3, 1).map(ids), Some(vec![4]));
        assert_eq!(hub.frames_after(5, 10).map(ids), Some(vec![]));
        assert!(hub.frames_after(1, 10).is_none());
    }
}
