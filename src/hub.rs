//! The in-memory fan-out: a broadcast channel of shared frames, and a ring of recent ones.
//!
//! Invariants: the hub does no I/O and never waits on a client, so publishing costs the same with
//! one client or ten thousand. Frames are published in strictly increasing id order (the listener
//! is the only publisher). Every published event with an id above [`Position::floor`] is in the
//! ring; older ones must be read from the event table. Nothing at or below
//! [`Position::pruned_through`] is served to anyone: a client whose cursor is older is told to
//! resync first, wherever the events it missed would come from.
//!
//! The hub starts unpositioned: the gateway serves before its database is reachable, and only the
//! listener's first connection reads where the event log stands ([`Hub::start`]). Until then it
//! has published nothing, its ring answers nothing, and subscribers learn their position once it
//! is known ([`Hub::started`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use crate::event::Frame;

pub struct Hub {
    sender: broadcast::Sender<Arc<Frame>>,
    // A std mutex: every critical section is a few pointer copies and never awaits.
    recent: Mutex<Recent>,
    /// The id the hub started after, once it has started.
    start: watch::Sender<Option<i64>>,
}

struct Recent {
    frames: VecDeque<Arc<Frame>>,
    capacity: usize,
    position: Position,
    started: bool,
}

/// Where the hub stands in the event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The id of the last event published (or, before the first, of the last event in the table
    /// when the hub started; 0 before it started).
    pub last_id: i64,
    /// Every event with an id above this that has been published is still in the ring.
    pub floor: i64,
    /// Every event with an id at or below this has been pruned from the event table (as far as
    /// the gateway last read `pgsse.horizon`).
    pub pruned_through: i64,
}

/// Where the event log stood when the gateway started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Start {
    /// The newest event id, or the horizon if pruning has emptied the table.
    pub last_id: i64,
    pub pruned_through: i64,
}

/// What a client needs to go live: its receiver and the id it starts after.
pub struct Subscription {
    pub receiver: broadcast::Receiver<Arc<Frame>>,
    /// The last id published when the receiver was created: every later event reaches the
    /// receiver (unless it lags), every earlier one is in the ring or the table. `None` before
    /// the hub started: then every event after its start reaches the receiver.
    pub last_id: Option<i64>,
}

impl Hub {
    /// A hub that has not started yet.
    pub fn new(broadcast_capacity: usize, ring_capacity: usize) -> Hub {
        let (sender, _) = broadcast::channel(broadcast_capacity);
        Hub {
            sender,
            recent: Mutex::new(Recent {
                frames: VecDeque::with_capacity(ring_capacity.min(1024)),
                capacity: ring_capacity,
                position: Position {
                    last_id: 0,
                    floor: 0,
                    pruned_through: 0,
                },
                started: false,
            }),
            start: watch::Sender::new(None),
        }
    }

    /// Positions the hub where the event log stands, once; later calls change nothing.
    pub fn start(&self, start: Start) {
        let mut recent = self.lock();
        if recent.started {
            return;
        }
        let last_id = start.last_id.max(start.pruned_through);
        recent.position = Position {
            last_id,
            floor: last_id,
            pruned_through: start.pruned_through,
        };
        recent.started = true;
        // Under the lock, so that a subscriber sees either no start and a later wake-up, or the
        // start in `subscribe`.
        self.start.send_replace(Some(last_id));
    }

    pub fn is_started(&self) -> bool {
        self.lock().started
    }

    /// Completes with the id the hub started after, once it has started.
    pub async fn started(&self) -> i64 {
        let mut start = self.start.subscribe();
        let started = start.wait_for(Option::is_some).await;
        started
            .ok()
            .and_then(|id| *id)
            .expect("the hub's own sender outlives its receivers")
    }

    /// Sends a frame to every subscriber and keeps it in the ring. Frames whose id is not above
    /// the last published one are ignored, so the caller may offer the same event twice.
    pub fn publish(&self, frame: Frame) -> bool {
        let frame = Arc::new(frame);
        let mut recent = self.lock();
        if !recent.started || frame.id <= recent.position.last_id {
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

    /// Records that the event table has been pruned through `through`. If that is beyond the last
    /// event published, those events were pruned before the gateway could read them: the hub
    /// moves past them and tells live subscribers with a gap frame, and this returns the first
    /// id that was lost.
    pub fn pruned(&self, through: i64) -> Option<i64> {
        let mut recent = self.lock();
        if !recent.started {
            return None;
        }
        let position = &mut recent.position;
        position.pruned_through = position.pruned_through.max(through);
        if through <= position.last_id {
            return None;
        }
        let lost = position.last_id + 1;
        position.last_id = through;
        position.floor = position.floor.max(through);
        let _ = self.sender.send(Arc::new(Frame::gap(through)));
        Some(lost)
    }

    /// A receiver for live frames, and the id it starts after.
    pub fn subscribe(&self) -> Subscription {
        let recent = self.lock();
        Subscription {
            receiver: self.sender.subscribe(),
            last_id: recent.started.then_some(recent.position.last_id),
        }
    }

    pub fn position(&self) -> Position {
        self.lock().position
    }

    /// Ring frames with ids above `after`, oldest first: up to `limit` of them, and no more once
    /// their data passes `max_bytes` (the first always comes). `None` when the ring no longer
    /// holds every event after `after` (the caller reads the table instead).
    pub fn frames_after(
        &self,
        after: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Option<Vec<Arc<Frame>>> {
        let recent = self.lock();
        if !recent.started || after < recent.position.floor {
            return None;
        }
        let start = recent.frames.partition_point(|f| f.id <= after);
        let mut bytes = 0;
        let page = recent.frames.range(start..).take(limit).enumerate();
        let page = page.take_while(|(n, frame)| {
            let within = *n == 0 || bytes < max_bytes;
            bytes += frame.data.len();
            within
        });
        let page = page.map(|(_, frame)| frame);
        Some(page.cloned().collect())
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

    /// A hub started after `last_id`.
    fn hub(broadcast: usize, ring: usize, last_id: i64) -> Hub {
        let hub = Hub::new(broadcast, ring);
        hub.start(Start {
            last_id,
            pruned_through: 0,
        });
        hub
    }

    #[test]
    fn a_subscriber_gets_what_is_published_after_it_subscribed() {
        let hub = hub(8, 8, 10);
        hub.publish(frame(11));
        let mut sub = hub.subscribe();
        assert_eq!(sub.last_id, Some(11));
        hub.publish(frame(12));
        assert_eq!(sub.receiver.try_recv().unwrap().id, 12);
        assert!(sub.receiver.try_recv().is_err());
    }

    #[test]
    fn an_event_offered_twice_is_published_once() {
        let hub = hub(8, 8, 0);
        let mut sub = hub.subscribe();
        assert!(hub.publish(frame(1)));
        assert!(!hub.publish(frame(1)));
        assert_eq!(sub.receiver.try_recv().unwrap().id, 1);
        assert!(sub.receiver.try_recv().is_err());
    }

    #[test]
    fn the_ring_answers_only_while_it_holds_everything_after_the_cursor() {
        let hub = hub(8, 3, 0);
        for id in 1..=5 {
            hub.publish(frame(id));
        }
        // The ring holds 3, 4, 5; event 2 was evicted, so the floor is 2.
        assert_eq!(
            hub.position(),
            Position {
                last_id: 5,
                floor: 2,
                pruned_through: 0
            }
        );
        let ids = |v: Vec<Arc<Frame>>| v.iter().map(|f| f.id).collect::<Vec<_>>();
        assert_eq!(
            hub.frames_after(2, 10, usize::MAX).map(ids),
            Some(vec![3, 4, 5])
        );
        assert_eq!(hub.frames_after(3, 1, usize::MAX).map(ids), Some(vec![4]));
        // Each frame's data is 14 bytes: the page stops once it holds 20.
        assert_eq!(hub.frames_after(2, 10, 20).map(ids), Some(vec![3, 4]));
        assert_eq!(hub.frames_after(2, 10, 0).map(ids), Some(vec![3]));
        assert_eq!(hub.frames_after(5, 10, usize::MAX).map(ids), Some(vec![]));
        assert!(hub.frames_after(1, 10, usize::MAX).is_none());
    }

    #[test]
    fn a_start_on_an_emptied_log_is_at_the_horizon() {
        let hub = Hub::new(8, 8);
        hub.start(Start {
            last_id: 0,
            pruned_through: 23,
        });
        assert_eq!(hub.subscribe().last_id, Some(23));
        assert_eq!(hub.position().pruned_through, 23);
    }

    #[test]
    fn pruning_past_what_was_published_moves_the_hub_and_tells_live_subscribers_once() {
        let hub = hub(8, 8, 0);
        hub.publish(frame(1));
        let mut sub = hub.subscribe();
        assert_eq!(hub.pruned(1), None);
        assert_eq!(hub.pruned(5), Some(2));
        assert_eq!(hub.pruned(5), None);
        let gap = sub.receiver.try_recv().unwrap();
        assert_eq!((gap.id, gap.is_gap()), (5, true));
        assert!(sub.receiver.try_recv().is_err());
        assert_eq!(hub.position().last_id, 5);
        assert!(!hub.publish(frame(5)));
        assert!(hub.publish(frame(6)));
    }

    #[tokio::test]
    async fn before_it_starts_the_hub_publishes_nothing_and_subscribers_learn_the_start_later() {
        let hub = Hub::new(8, 8);
        let mut early = hub.subscribe();
        assert_eq!(early.last_id, None);
        assert!(!hub.publish(frame(1)));
        assert!(hub.frames_after(0, 10, usize::MAX).is_none());
        hub.start(Start {
            last_id: 5,
            pruned_through: 0,
        });
        hub.start(Start {
            last_id: 9,
            pruned_through: 0,
        });
        assert_eq!(hub.started().await, 5);
        assert!(hub.publish(frame(6)));
        assert_eq!(early.receiver.try_recv().unwrap().id, 6);
    }
}
