//! The in-memory fan-out: a broadcast channel of shared frames, and a ring of recent ones.
//!
//! Invariants: the hub does no I/O and never waits on a client, so publishing costs the same with
//! one client or ten thousand. Frames are published in strictly increasing id order (the listener
//! is the only publisher). Every published event with an id above [`Position::floor`] is in the
//! ring; older ones must be read from the event table. Nothing at or below
//! [`Position::pruned_through`] is served to anyone: a client whose cursor is older is told to
//! resync first, wherever the events it missed would come from.
//!
//! Memory: the ring is bounded in frames and in bytes ([`RingBounds`]): it lets its oldest frames
//! go while it is over either bound, but always keeps the newest. What the broadcast keeps alive
//! is bounded in bytes too. tokio's broadcast drops a frame once every receiver has received it,
//! but a receiver that stops receiving (a stream whose client stopped reading no longer polls
//! it) keeps up to its capacity of frames alive: 4096 events of 60 KB are 240 MB. So a frame
//! whose data is larger than [`HELD_WEAKLY_ABOVE`] goes through the broadcast held weakly, with
//! its id ([`Live`]): the ring holds it, and once the ring lets it go nothing else does. A stream
//! that receives it after that finds it gone and, as for a `RecvError::Lagged`, catches up from
//! its cursor through history (the ring or the table). Small frames, nearly all of them, go as
//! shared frames as before, so delivering one costs a match more and nothing else. What a
//! stalled receiver holds is then at most `BROADCAST_CAPACITY` small frames (16 MiB of data at
//! the defaults) and, of the large ones, only what the ring holds anyway. Holding every frame
//! weakly would cost each delivery an upgrade (four atomic operations on the counts every stream
//! shares, instead of two); a channel of our own that evicts by bytes would replace tokio's for
//! the sake of stalled clients alone.
//!
//! The hub starts unpositioned: the gateway serves before its database is reachable, and only the
//! listener's first connection reads where the event log stood when the hub was made
//! ([`Hub::start`]; the listener then publishes everything committed since). Until then it has
//! published nothing, its ring answers nothing, and subscribers learn their position once it is
//! known ([`Hub::started`]): every event committed after they subscribed reaches them.
//!
//! Coalescing: when events come faster than the window ([`Coalescing`]), an event that follows
//! the one before within a window, while the last batch went out less than a window ago, is held
//! until a window after that batch, and then goes to the subscribers with every other event held
//! meanwhile, all at once. Each stream then
//! wakes once for the batch and writes it in one call, instead of once per event. An event after a
//! quiet spell goes out the moment it arrives. Held events are in the ring (and in `last_id`) at
//! once, so a resume or a new subscriber sees the same log either way.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, watch, Notify};
use tokio::time::Instant;

use crate::config::{Config, COALESCE_PER_STREAM};
use crate::event::{Frame, LogPosition};
use crate::shutdown::Shutdown;

/// Frames whose data is larger than this many bytes go through the broadcast held weakly (see
/// the module's docs).
pub const HELD_WEAKLY_ABOVE: usize = 4096;

pub struct Hub {
    sender: broadcast::Sender<Live>,
    // A std mutex: every critical section is a few pointer copies and never awaits.
    recent: Mutex<Recent>,
    /// The id the hub started after, once it has started.
    start: watch::Sender<Option<i64>>,
    coalescing: Coalescing,
    /// Wakes [`Hub::release_held`] when events start being held.
    held: Notify,
    /// When the hub was made, which is when the gateway started.
    made: std::time::Instant,
}

struct Recent {
    frames: VecDeque<Arc<Frame>>,
    /// What the frames in the ring weigh, by [`weight`].
    bytes: usize,
    bounds: RingBounds,
    position: Position,
    started: bool,
    /// Published, but not sent to the subscribers yet: the next batch.
    held: Vec<Live>,
    /// When the last batch (or single event) went to the subscribers.
    sent_at: Option<Instant>,
    /// When the held events are due to go.
    release_at: Option<Instant>,
    /// When the last event was published (held or not).
    arrived_at: Option<Instant>,
}

/// How much the ring of recent frames holds: it lets the oldest go while it holds more frames or
/// more bytes than this, but always keeps the newest.
#[derive(Clone, Copy, Debug)]
pub struct RingBounds {
    pub frames: usize,
    /// Counted as each frame's data and its fixed size ([`weight`]).
    pub bytes: usize,
}

/// A frame as the broadcast carries it: shared, or, when its data is large, held weakly so that
/// only the ring keeps it alive (see the module's docs).
#[derive(Clone, Debug)]
pub enum Live {
    Shared(Arc<Frame>),
    Weak { id: i64, frame: Weak<Frame> },
}

impl Live {
    pub fn id(&self) -> i64 {
        match self {
            Live::Shared(frame) => frame.id,
            Live::Weak { id, .. } => *id,
        }
    }

    fn of(frame: &Arc<Frame>) -> Live {
        if frame.data.len() > HELD_WEAKLY_ABOVE {
            Live::Weak {
                id: frame.id,
                frame: Arc::downgrade(frame),
            }
        } else {
            Live::Shared(frame.clone())
        }
    }

    /// The frame, or, when the ring let it go before this receiver got to it, its id: the
    /// receiver is behind, and must read it from history.
    pub fn frame(self) -> Result<Arc<Frame>, i64> {
        match self {
            Live::Shared(frame) => Ok(frame),
            Live::Weak { id, frame } => frame.upgrade().ok_or(id),
        }
    }
}

/// How long events may wait to go to the subscribers together (see the module's docs).
#[derive(Clone, Copy, Debug)]
pub struct Coalescing {
    /// The longest an event waits; zero sends every event on its own.
    pub window: Duration,
    /// The window is at most this much per subscriber, so that a hub with few of them (whose
    /// events are cheap to write) sends each event at once.
    pub per_subscriber: Duration,
}

impl Coalescing {
    /// No coalescing: every event goes to the subscribers the moment it is published.
    pub const OFF: Coalescing = Coalescing {
        window: Duration::ZERO,
        per_subscriber: Duration::ZERO,
    };

    /// The window for this many subscribers.
    fn window(&self, subscribers: usize) -> Duration {
        let subscribers = u32::try_from(subscribers).unwrap_or(u32::MAX);
        self.window
            .min(self.per_subscriber.saturating_mul(subscribers))
    }
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

/// What a client needs to go live: its receiver and the id it starts after.
pub struct Subscription {
    pub receiver: broadcast::Receiver<Live>,
    /// The last id published when the receiver was created: every later event reaches the
    /// receiver (unless it lags), every earlier one is in the ring or the table. `None` before
    /// the hub started: then every event after its start reaches the receiver.
    pub last_id: Option<i64>,
}

impl Hub {
    /// A hub that has not started yet.
    pub fn new(broadcast_capacity: usize, ring: RingBounds, coalescing: Coalescing) -> Hub {
        let (sender, _) = broadcast::channel(broadcast_capacity);
        Hub {
            sender,
            recent: Mutex::new(Recent {
                frames: VecDeque::with_capacity(ring.frames.min(1024)),
                bytes: 0,
                bounds: ring,
                position: Position {
                    last_id: 0,
                    floor: 0,
                    pruned_through: 0,
                },
                started: false,
                held: Vec::new(),
                sent_at: None,
                release_at: None,
                arrived_at: None,
            }),
            start: watch::Sender::new(None),
            coalescing,
            held: Notify::new(),
            made: std::time::Instant::now(),
        }
    }

    /// A hub with the broadcast, ring and coalescing `config` sets.
    pub fn from_config(config: &Config) -> Hub {
        let ring = RingBounds {
            frames: config.ring_capacity,
            bytes: config.ring_bytes,
        };
        let coalescing = Coalescing {
            window: config.coalesce_window,
            per_subscriber: COALESCE_PER_STREAM,
        };
        Hub::new(config.broadcast_capacity, ring, coalescing)
    }

    /// How long ago the hub was made: it starts where the event log stood then (see
    /// [`Hub::start`]), so that streams that subscribed before it started miss nothing.
    pub fn age(&self) -> Duration {
        self.made.elapsed()
    }

    /// Positions the hub where the event log stands, once; later calls change nothing.
    pub fn start(&self, start: LogPosition) {
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
        let live = Live::of(&frame);
        recent.keep(frame);
        self.send(&mut recent, live);
        true
    }

    /// Sends a frame to the subscribers now, or holds it for the next batch: when others are
    /// held already, or the last batch went out less than a window ago. Under the lock, in id
    /// order, so that `subscribe` sees either the frame in `last_id` or the frame in its receiver
    /// (now or with its batch), never neither.
    fn send(&self, recent: &mut Recent, frame: Live) {
        if !recent.held.is_empty() {
            recent.arrived_at = Some(Instant::now());
            return recent.held.push(frame);
        }
        let now = Instant::now();
        let window = self.coalescing.window(self.sender.receiver_count());
        // Events come quickly when this one follows the last within a window: then it waits
        // for a window after the last batch. (Measured from the last batch alone, events that
        // come about a window apart would each wait for the one before, for ever.)
        let quick = recent.arrived_at.is_some_and(|last| now < last + window);
        recent.arrived_at = Some(now);
        match recent.sent_at {
            Some(sent) if quick && now < sent + window => {
                recent.held.push(frame);
                recent.release_at = Some(sent + window);
                self.held.notify_one();
            }
            _ => {
                // An error only means nobody is listening.
                let _ = self.sender.send(frame);
                recent.sent_at = Some(now);
            }
        }
    }

    /// Sends each batch of held events when it is due, until shutdown: the one timer of the
    /// whole hub.
    pub async fn release_held(&self, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                () = self.held.notified() => {}
                () = shutdown.fired() => return,
            }
            let due = self.lock().release_at;
            if let Some(due) = due {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    () = shutdown.fired() => return,
                }
            }
            let mut recent = self.lock();
            let held = std::mem::take(&mut recent.held);
            if held.is_empty() {
                continue;
            }
            for frame in held {
                let _ = self.sender.send(frame);
            }
            recent.sent_at = Some(Instant::now());
            recent.release_at = None;
        }
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
        // After any held events, whose ids are lower.
        self.send(&mut recent, Live::Shared(Arc::new(Frame::gap(through))));
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

impl Recent {
    /// Keeps the newest frame in the ring, and lets the oldest go while the ring is over either
    /// of its bounds (but never the newest).
    fn keep(&mut self, frame: Arc<Frame>) {
        self.bytes += weight(&frame);
        self.frames.push_back(frame);
        while self.frames.len() > self.bounds.frames
            || (self.bytes > self.bounds.bytes && self.frames.len() > 1)
        {
            let Some(evicted) = self.frames.pop_front() else {
                break;
            };
            self.bytes -= weight(&evicted);
            self.position.floor = evicted.id;
        }
    }
}

/// What a frame weighs in the ring: its data, its recipients and topic, and its own size (which
/// counts for small ones).
fn weight(frame: &Frame) -> usize {
    std::mem::size_of::<Frame>()
        + frame.data.len()
        + frame.kind.len()
        + frame.topic.as_ref().map_or(0, |topic| topic.len())
        + frame.target.as_ref().map_or(0, |target| target.size())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(id: i64) -> Frame {
        Frame::render(id, "newBoard", &json!({ "board_id": id }).to_string(), None)
    }

    /// A ring bounded by count only.
    fn frames(frames: usize) -> RingBounds {
        RingBounds {
            frames,
            bytes: usize::MAX,
        }
    }

    /// A hub started after `last_id`.
    fn hub(broadcast: usize, ring: usize, last_id: i64) -> Hub {
        let hub = Hub::new(broadcast, frames(ring), Coalescing::OFF);
        hub.start(LogPosition {
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
        assert_eq!(sub.receiver.try_recv().unwrap().id(), 12);
        assert!(sub.receiver.try_recv().is_err());
    }

    #[test]
    fn an_event_offered_twice_is_published_once() {
        let hub = hub(8, 8, 0);
        let mut sub = hub.subscribe();
        assert!(hub.publish(frame(1)));
        assert!(!hub.publish(frame(1)));
        assert_eq!(sub.receiver.try_recv().unwrap().id(), 1);
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

    /// A frame whose data is `size` bytes.
    fn big(id: i64, size: usize) -> Frame {
        let data = format!("\"{}\"", "x".repeat(size - 2));
        Frame::render(id, "big", &data, None)
    }

    /// A started hub whose ring holds up to 25,000 bytes: two frames of 10,000, not three.
    fn hub_of_bytes() -> Hub {
        let ring = RingBounds {
            frames: 100,
            bytes: 25_000,
        };
        let hub = Hub::new(8, ring, Coalescing::OFF);
        hub.start(LogPosition::default());
        hub
    }

    fn ids(frames: Option<Vec<Arc<Frame>>>) -> Option<Vec<i64>> {
        frames.map(|v| v.iter().map(|f| f.id).collect())
    }

    #[test]
    fn the_ring_lets_its_oldest_frames_go_while_over_its_bytes_but_keeps_the_newest() {
        let hub = hub_of_bytes();
        for id in 1..=3 {
            hub.publish(big(id, 10_000));
        }
        assert_eq!(hub.position().floor, 1);
        assert_eq!(ids(hub.frames_after(1, 10, usize::MAX)), Some(vec![2, 3]));
        assert_eq!(ids(hub.frames_after(0, 10, usize::MAX)), None);
        // A frame larger than the whole bound stays, alone, while it is the newest.
        hub.publish(big(4, 30_000));
        assert_eq!(hub.position().floor, 3);
        assert_eq!(ids(hub.frames_after(3, 10, usize::MAX)), Some(vec![4]));
        hub.publish(frame(5));
        assert_eq!(hub.position().floor, 4);
        assert_eq!(ids(hub.frames_after(4, 10, usize::MAX)), Some(vec![5]));
        assert_eq!(ids(hub.frames_after(3, 10, usize::MAX)), None);
    }

    #[test]
    fn a_large_frame_lives_only_as_long_as_the_ring_holds_it_whoever_has_not_received_it() {
        let hub = hub_of_bytes();
        let mut stalled = hub.subscribe();
        let mut live = hub.subscribe();
        hub.publish(big(1, 10_000));
        hub.publish(frame(2));
        let first = Arc::downgrade(&hub.frames_after(0, 1, usize::MAX).unwrap()[0]);
        // A receiver that keeps up gets the frame itself.
        let received = live.receiver.try_recv().unwrap().frame().unwrap();
        assert_eq!((received.id, received.data.len()), (1, 10_000));
        drop(received);
        hub.publish(big(3, 10_000));
        hub.publish(big(4, 10_000));
        assert_eq!(hub.position().floor, 1);
        assert!(first.upgrade().is_none(), "the stalled receiver keeps it");
        // The stalled receiver finds it gone, with its id; the small frame is still there.
        let mut received = || stalled.receiver.try_recv().unwrap().frame().map(|f| f.id);
        assert_eq!(received(), Err(1));
        assert_eq!(received(), Ok(2));
        assert_eq!(received(), Ok(3));
        assert_eq!(received(), Ok(4));
    }

    #[test]
    fn a_start_on_an_emptied_log_is_at_the_horizon() {
        let hub = Hub::new(8, frames(8), Coalescing::OFF);
        hub.start(LogPosition {
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
        let gap = sub.receiver.try_recv().unwrap().frame().unwrap();
        assert_eq!((gap.id, gap.is_gap()), (5, true));
        assert!(sub.receiver.try_recv().is_err());
        assert_eq!(hub.position().last_id, 5);
        assert!(!hub.publish(frame(5)));
        assert!(hub.publish(frame(6)));
    }

    #[tokio::test]
    async fn before_it_starts_the_hub_publishes_nothing_and_subscribers_learn_the_start_later() {
        let hub = Hub::new(8, frames(8), Coalescing::OFF);
        let mut early = hub.subscribe();
        assert_eq!(early.last_id, None);
        assert!(!hub.publish(frame(1)));
        assert!(hub.frames_after(0, 10, usize::MAX).is_none());
        hub.start(LogPosition {
            last_id: 5,
            pruned_through: 0,
        });
        hub.start(LogPosition {
            last_id: 9,
            pruned_through: 0,
        });
        assert_eq!(hub.started().await, 5);
        assert!(hub.publish(frame(6)));
        assert_eq!(early.receiver.try_recv().unwrap().id(), 6);
    }

    /// A hub started at 0 that holds events for up to 10 ms, 1 ms per subscriber.
    fn coalescing_hub() -> Arc<Hub> {
        let coalescing = Coalescing {
            window: Duration::from_millis(10),
            per_subscriber: Duration::from_millis(1),
        };
        let hub = Arc::new(Hub::new(64, frames(64), coalescing));
        hub.start(LogPosition::default());
        hub
    }

    /// Starts the hub's timer; the trigger stops it when dropped.
    fn release(hub: &Arc<Hub>) -> crate::shutdown::Trigger {
        let (trigger, shutdown) = crate::shutdown::channel();
        let hub = hub.clone();
        tokio::spawn(async move { hub.release_held(shutdown).await });
        trigger
    }

    fn received(sub: &mut Subscription) -> Vec<i64> {
        std::iter::from_fn(|| sub.receiver.try_recv().ok())
            .map(|f| f.id())
            .collect()
    }

    async fn after(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn events_that_come_quickly_go_together_a_window_after_the_last_batch() {
        let hub = coalescing_hub();
        let _timer = release(&hub);
        // Ten subscribers: a window of 10 ms.
        let mut subs: Vec<_> = (0..10).map(|_| hub.subscribe()).collect();
        hub.publish(frame(1));
        for sub in &mut subs {
            assert_eq!(received(sub), [1], "after a quiet spell: at once");
        }
        after(3).await;
        hub.publish(frame(2));
        after(3).await;
        hub.publish(frame(3));
        // Held, but already in the ring and the position.
        assert_eq!(received(&mut subs[0]), [0i64; 0]);
        assert_eq!(hub.position().last_id, 3);
        assert_eq!(hub.subscribe().last_id, Some(3));
        let ring = hub.frames_after(1, 10, usize::MAX).unwrap();
        assert_eq!(ring.iter().map(|f| f.id).collect::<Vec<_>>(), [2, 3]);
        after(3).await;
        assert_eq!(received(&mut subs[0]), [0i64; 0], "9 ms after the first");
        after(2).await;
        for sub in &mut subs {
            assert_eq!(received(sub), [2, 3], "a window after the first: together");
        }
        // Quiet for a window: the next event goes at once again.
        after(10).await;
        hub.publish(frame(4));
        assert_eq!(received(&mut subs[0]), [4]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_a_window_after_the_one_before_goes_at_once_even_after_a_batch() {
        let hub = coalescing_hub();
        let _timer = release(&hub);
        let mut subs: Vec<_> = (0..10).map(|_| hub.subscribe()).collect();
        hub.publish(frame(1));
        after(5).await;
        hub.publish(frame(2));
        assert_eq!(received(&mut subs[0]), [1]);
        after(11).await;
        // Event 2 went out at 10 ms; event 3 comes at 16 ms, 11 ms after event 2 arrived.
        assert_eq!(received(&mut subs[0]), [2]);
        hub.publish(frame(3));
        assert_eq!(received(&mut subs[0]), [3]);
    }

    #[tokio::test(start_paused = true)]
    async fn with_few_subscribers_the_window_is_short() {
        let hub = coalescing_hub();
        let _timer = release(&hub);
        // Two subscribers: a window of 2 ms, so events 3 ms apart are never held.
        let mut subs = [hub.subscribe(), hub.subscribe()];
        for id in 1..=5 {
            hub.publish(frame(id));
            assert_eq!(received(&mut subs[0]), [id]);
            after(3).await;
        }
        hub.publish(frame(6));
        hub.publish(frame(7));
        assert_eq!(received(&mut subs[1]), [1, 2, 3, 4, 5, 6]);
        after(1).await;
        assert_eq!(received(&mut subs[1]), [0i64; 0]);
        after(2).await;
        assert_eq!(received(&mut subs[1]), [7]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_goes_after_the_events_held_before_it() {
        let hub = coalescing_hub();
        let _timer = release(&hub);
        let mut subs: Vec<_> = (0..10).map(|_| hub.subscribe()).collect();
        hub.publish(frame(1));
        hub.publish(frame(2));
        assert_eq!(hub.pruned(9), Some(3));
        assert_eq!(received(&mut subs[0]), [1]);
        after(9).await;
        assert_eq!(received(&mut subs[0]), [0i64; 0]);
        after(2).await;
        assert_eq!(received(&mut subs[0]), [2, 9]);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_window_every_event_goes_at_once() {
        let hub = Hub::new(64, frames(64), Coalescing::OFF);
        hub.start(LogPosition::default());
        let mut subs: Vec<_> = (0..10).map(|_| hub.subscribe()).collect();
        for id in 1..=3 {
            hub.publish(frame(id));
        }
        assert_eq!(received(&mut subs[9]), [1, 2, 3]);
    }
}
