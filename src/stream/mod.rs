//! The stream engine: one client's events, as warp's SSE support sends them.
//!
//! A client is a cursor over the event log: the id of the last event it has been sent (or passed
//! over, when its filter did not want it). It is subscribed to the hub before anything is read,
//! then catches up from history (the ring, or the table when the ring no longer reaches back far
//! enough), then follows live frames, skipping any id at or below its cursor. So history and live
//! meet without a gap or a duplicate, and a client that lags behind the broadcast (or reaches a
//! large event after the ring let it go, see [`crate::hub::Live`]) catches up again from its
//! cursor: nothing is skipped. Reading history is in `history`.
//!
//! Invariants: a stream holds at most one page of history at a time, bounded in events and in
//! bytes ([`crate::store::events::PAGE_BYTES`]); what it sends is strictly increasing in id; it
//! does no I/O of its own but history reads, and it never turns into an error once it has started
//! (a browser's `EventSource` gives up for good on one).

mod filter;
mod history;
mod open;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, Sleep};
use warp::sse::Event;

pub use self::filter::EventFilter;
pub use self::open::{open, room, Refused, Request};
use crate::event::Frame;
use crate::gate::Gated;
use crate::hub::{Hub, Live};
use crate::metrics::Metrics;
use crate::registry::{self, Entry, Registration, Registry};
use crate::shutdown::Shutdown;

/// How long a browser waits before reconnecting, sent first on every stream.
const RETRY: Duration = Duration::from_millis(2000);
/// Events per history read, from the ring or the table.
const REPLAY_PAGE: usize = 500;
/// Pause before retrying a history read that failed because the database is unavailable.
const REPLAY_RETRY: Duration = Duration::from_secs(1);
/// A client whose filter passes events over is told its position (an id-only frame) at least
/// every this many ids, so that a reconnect does not replay a long filtered-out stretch.
const POSITION_EVERY: i64 = 500;

/// What every stream shares: where events come from, and the rules streams follow.
pub struct Settings {
    pub hub: Arc<Hub>,
    /// For history older than the ring.
    pub pool: Pool,
    pub metrics: Arc<Metrics>,
    /// The connected streams: each stream registers there, and leaves when it ends.
    pub registry: Arc<Registry>,
    /// Quiet time after which a stream gets a keep-alive comment (warp's keep-alive), and after
    /// which a filtered stream is told the position it has passed over to.
    pub keepalive: Duration,
    /// How long a client may stay behind the live stream before it is disconnected to resume.
    pub slow_client: Duration,
    /// Streams end when this fires.
    pub shutdown: Shutdown,
}

/// What a stream starts from.
pub struct Opening {
    /// Where to resume; `None` starts live (after `history`).
    pub last_event_id: Option<i64>,
    /// How many ids before the newest event a stream without `last_event_id` starts, so that it
    /// opens with recent history; 0 for none.
    pub history: i64,
    /// Whether every event goes out unnamed, its name inside its data (see [`enveloped`]).
    pub envelope: bool,
    pub filter: EventFilter,
    /// Who is listening; also how the stream is listed and closed when its user has too many.
    pub registration: Registration,
    /// When the stream must end because its access token expires.
    pub expires_at: Option<Instant>,
}

pub struct ClientStream {
    settings: Arc<Settings>,
    receiver: broadcast::Receiver<Live>,
    filter: EventFilter,
    registration: Registration,
    /// Completes when the stream must end: shutdown, too many streams of its user, or its
    /// access token expiring. Made once per stream, not once per event.
    closing: Gated<Pin<Box<dyn Future<Output = Close> + Send>>>,
    /// The id of the last event this client has been sent or has passed over.
    cursor: i64,
    /// The last id the client itself has been told (in an event or an id-only frame).
    told: i64,
    /// Whether the client has been told (or told the server) where it stands; not yet for a live
    /// stream opened before the hub knew where the event log stands.
    positioned: bool,
    /// Set until the hub has started, that is until the database has been reached.
    awaiting_start: bool,
    /// Set while the client must read history before following live frames.
    catching_up: bool,
    /// See [`Opening::history`].
    history: i64,
    /// See [`Opening::envelope`].
    envelope: bool,
    /// Since when the client has been behind the live stream, if it is.
    behind_since: Option<Instant>,
    /// Set when the client is to be disconnected once what is ready has gone.
    hopeless: bool,
    opened: bool,
    /// Events to send before anything else is read: the opening, or a page of history.
    ready: VecDeque<Event>,
    /// For a client whose filter passed events over without telling it: when to tell it its
    /// position. Armed once, not per event.
    position_due: Option<Pin<Box<Sleep>>>,
}

/// How a client found itself behind the live stream.
enum Behind {
    /// The broadcast moved on without it by this many events.
    Missed(u64),
    /// It reached a large event after the ring let it go (see [`crate::hub::Live`]).
    Evicted(i64),
}

impl std::fmt::Display for Behind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Behind::Missed(missed) => write!(f, "{missed} more events behind"),
            Behind::Evicted(id) => write!(f, "event {id} no longer in memory"),
        }
    }
}

/// Why a stream ends on the server's side.
enum Close {
    Shutdown,
    Evicted,
    Expired,
}

/// What one step of the stream produced (its events are in `ready`).
enum Step {
    Continue,
    End,
}

impl ClientStream {
    /// Opens a stream as `opening` describes.
    pub fn start(settings: Arc<Settings>, opening: Opening) -> ClientStream {
        let subscription = settings.hub.subscribe();
        let started = subscription.last_id.is_some();
        let history = opening.last_event_id.map_or(opening.history, |_| 0);
        let cursor = match (opening.last_event_id, subscription.last_id) {
            (Some(id), _) => id,
            (None, Some(newest)) => back_from(&settings.hub, newest, history),
            (None, None) => 0,
        };
        let closing = Gated::new(closing(
            settings.shutdown.clone(),
            opening.registration.entry.clone(),
            opening.expires_at,
        ));
        ClientStream {
            receiver: subscription.receiver,
            filter: opening.filter,
            registration: opening.registration,
            closing,
            cursor,
            told: cursor,
            positioned: started || opening.last_event_id.is_some(),
            awaiting_start: !started,
            catching_up: opening.last_event_id.is_some() || (started && history > 0),
            history,
            envelope: opening.envelope,
            behind_since: None,
            hopeless: false,
            opened: false,
            // Room for the opening's two events, and then for each live event in turn.
            ready: VecDeque::with_capacity(2),
            position_due: None,
            settings,
        }
    }

    /// The stream as warp's SSE reply takes it: events until the client leaves or the server
    /// ends the stream.
    pub fn into_events(self) -> impl Stream<Item = Result<Event, Infallible>> + Send + Sync {
        let events = futures_util::stream::unfold(self, |mut stream| async move {
            let event = stream.next_event().await?;
            Some((Ok(event), stream))
        });
        // warp's reply must be Sync; the stream is only ever polled through `&mut`, which is
        // what SyncStream relies on.
        sync_wrapper::SyncStream::new(events)
    }

    /// The next event to send, or `None` when the stream is over. Cancelling it loses nothing.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                if self.ready.is_empty() && self.ready.capacity() > 2 {
                    // A page of history has gone: an idle stream keeps no room for the next.
                    self.ready = VecDeque::with_capacity(2);
                }
                return Some(event);
            }
            if self.hopeless {
                return None;
            }
            if !self.opened {
                self.opened = true;
                self.open();
                continue;
            }
            let step = if self.awaiting_start {
                self.await_start().await
            } else if self.catching_up {
                self.catch_up().await
            } else {
                self.follow().await
            };
            if let Step::End = step {
                return None;
            }
        }
    }

    /// The stream's first events. The first carries the stream's position, the id it starts
    /// after, without data: a browser dispatches nothing for it but takes the id as its
    /// Last-Event-ID, so a stream cut before its first event resumes from where it began
    /// instead of starting live again and missing what committed meanwhile. Then
    /// `event: connection`: who the stream is for (and whether a token said so), the newest event
    /// id the gateway knows (so a page can tell the events it missed from live ones) and the
    /// server's time, as apps built for NestJS-style SSE modules expect. It has no id of its own.
    fn open(&mut self) {
        let mut first = Event::default().retry(RETRY).comment(" pgsse stream open");
        // Before the database is reached a live stream's position is not known yet; it follows
        // as soon as it is.
        if self.positioned {
            first = first.id(self.cursor.to_string());
        }
        let viewer = &self.registration.entry.viewer;
        let hub = &self.settings.hub;
        let data = json!({
            "client_id": viewer.client_id,
            "user": viewer.user,
            "session_id": viewer.session_id,
            "authenticated": viewer.authenticated,
            "newest_id": hub.is_started().then(|| hub.position().last_id),
            "server_time": registry::rfc3339(std::time::SystemTime::now()),
        });
        let connection = self.named("connection", data);
        self.ready.push_back(first);
        self.ready.push_back(connection);
    }

    /// One of the gateway's own events (`connection`, `resync`), named, or in its envelope.
    fn named(&self, kind: &str, data: serde_json::Value) -> Event {
        if self.envelope {
            Event::default().data(json!({ "kind": kind, "data": data }).to_string())
        } else {
            Event::default().event(kind).data(data.to_string())
        }
    }

    /// Live frames, until the stream must end.
    async fn follow(&mut self) -> Step {
        let position_due = async {
            match &mut self.position_due {
                Some(due) => due.as_mut().await,
                None => std::future::pending().await,
            }
        };
        // In this order: a flood of events must not hold off the end of a stream.
        tokio::select! {
            biased;
            close = &mut self.closing => self.closed(close),
            received = self.receiver.recv() => self.received(received),
            () = position_due => self.tell_position(),
        }
    }

    fn received(&mut self, received: Result<Live, RecvError>) -> Step {
        match received.map(Live::frame) {
            Ok(Ok(frame)) => {
                self.take(&frame);
                // Only for a client that was behind: asking the receiver takes the lock that
                // every stream and the hub share.
                if self.behind_since.is_some() && self.receiver.is_empty() {
                    self.behind_since = None;
                }
                Step::Continue
            }
            // A large event the ring let go before this client got to it (a copy of one it has
            // already read from history is skipped, as `take` skips any).
            Ok(Err(id)) => {
                if id > self.cursor {
                    self.lagged(Behind::Evicted(id));
                }
                Step::Continue
            }
            Err(RecvError::Lagged(missed)) => {
                self.lagged(Behind::Missed(missed));
                Step::Continue
            }
            Err(RecvError::Closed) => Step::End,
        }
    }

    /// The client fell behind the broadcast: it catches up from history, or, if it has been
    /// behind for too long already, is disconnected so that it resumes with Last-Event-ID.
    fn lagged(&mut self, behind: Behind) {
        let since = *self.behind_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.settings.slow_client {
            log::warn!(
                "disconnecting a client at event {}: behind the live stream for {} s and {behind} \
                 now; it will resume from there",
                self.cursor,
                since.elapsed().as_secs()
            );
            self.settings.metrics.forced_disconnects.inc();
            self.hopeless = true;
            return;
        }
        log::info!(
            "a client fell behind after event {} ({behind}); catching up from history",
            self.cursor
        );
        self.settings.metrics.lag_resyncs.inc();
        self.catching_up = true;
    }

    /// Queues a frame unless the client already has it, it is meant for someone else, or the
    /// client's filter does not want it.
    fn take(&mut self, frame: &Frame) {
        if frame.id <= self.cursor {
            return;
        }
        if frame.is_gap() {
            let resync = self.resync(frame.id);
            return self.ready.push_back(resync);
        }
        self.cursor = frame.id;
        let entry = &self.registration.entry;
        let for_viewer = frame
            .target
            .as_ref()
            .is_none_or(|t| t.admits(&entry.viewer));
        if for_viewer && self.filter.accepts(frame) {
            let message = if self.envelope {
                enveloped(frame)
            } else {
                event(frame)
            };
            self.ready.push_back(message);
            entry.sent(frame.id);
            let metrics = &self.settings.metrics;
            metrics.frames_delivered.inc();
            if let Some(delay) = frame.first_write() {
                metrics.first_write(delay);
            }
            self.told = frame.id;
        } else if self.cursor - self.told >= POSITION_EVERY {
            self.ready.push_back(position(self.cursor));
            self.told = self.cursor;
        } else if self.position_due.is_none() {
            let due = Instant::now() + self.settings.keepalive;
            self.position_due = Some(Box::pin(tokio::time::sleep_until(due)));
        }
    }

    /// A filtered client has been quiet for a keep-alive interval after passing events over:
    /// it is told where it stands.
    fn tell_position(&mut self) -> Step {
        self.position_due = None;
        if self.told < self.cursor {
            self.told = self.cursor;
            self.ready.push_back(position(self.cursor));
        }
        Step::Continue
    }

    /// Waits until the hub knows where the event log stands (the database had not been reached
    /// when the stream opened); warp's keep-alives keep the stream open meanwhile. Then a live
    /// client is told its position, the id the hub started after (every later event is in its
    /// receiver), and a resuming one goes on to catch up from its own.
    async fn await_start(&mut self) -> Step {
        let hub = self.settings.hub.clone();
        // Boxed: only streams opened before the database was reached ever wait here.
        let started = Box::pin(async move { hub.started().await });
        let start = tokio::select! {
            biased;
            close = &mut self.closing => return self.closed(close),
            start = started => start,
        };
        self.awaiting_start = false;
        if !self.positioned {
            self.positioned = true;
            self.cursor = back_from(&self.settings.hub, start, self.history);
            self.told = self.cursor;
            self.catching_up = self.cursor < start;
            self.ready.push_back(position(self.cursor));
        }
        Step::Continue
    }

    fn closed(&self, close: Close) -> Step {
        if let Close::Expired = close {
            log::info!(
                "closing the stream of {:?} (client {}): its access token expired",
                self.registration.entry.viewer.user.as_deref().unwrap_or(""),
                self.registration.entry.viewer.client_id
            );
        }
        // Shutdown is logged once by the app, eviction by the registry.
        Step::End
    }
}

/// An event's SSE message. The data was serialised once for every client; warp's `Event` owns
/// its fields, so each client's message copies it.
fn event(frame: &Frame) -> Event {
    Event::default()
        .id(frame.id.to_string())
        .event(&*frame.kind)
        .data(&*frame.data)
}

/// Where a new stream with `history` starts: that many ids before `newest`, but never before
/// what was pruned (a new stream has nothing to resync from).
fn back_from(hub: &Hub, newest: i64, history: i64) -> i64 {
    if history == 0 {
        return newest;
    }
    newest
        .saturating_sub(history)
        .max(hub.position().pruned_through)
        .max(0)
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
fn position(id: i64) -> Event {
    Event::default().id(id.to_string())
}

/// The future that ends a stream: the first of shutdown, eviction and token expiry.
fn closing(
    mut shutdown: Shutdown,
    entry: Arc<Entry>,
    expires_at: Option<Instant>,
) -> Pin<Box<dyn Future<Output = Close> + Send>> {
    Box::pin(async move {
        let expiry = async {
            match expires_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.fired() => Close::Shutdown,
            () = entry.evicted.notified() => Close::Evicted,
            () = expiry => Close::Expired,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Claim, Registry};
    use crate::{config::Config, db, shutdown};
    use serde_json::Value;

    /// Settings whose database is never reached: these streams are served from memory.
    fn settings(slow_client: Duration) -> (Arc<Settings>, shutdown::Trigger) {
        let config = Config::from_lookup(|name| {
            (name == "DATABASE_URL").then(|| "postgres://nobody@127.0.0.1:1/none".to_owned())
        })
        .unwrap();
        let (trigger, shutdown) = shutdown::channel();
        let ring = crate::hub::RingBounds {
            frames: 100,
            bytes: 64 * 1024,
        };
        let hub = Arc::new(Hub::new(4, ring, crate::hub::Coalescing::OFF));
        hub.start(Default::default());
        let settings = Settings {
            pool: db::pool(&config),
            hub,
            metrics: Arc::new(Metrics::default()),
            registry: Arc::new(Registry::new(10, 10)),
            keepalive: Duration::from_secs(60),
            slow_client,
            shutdown,
        };
        (Arc::new(settings), trigger)
    }

    fn opening() -> Opening {
        let claim = Claim {
            user: None,
            client_id: None,
            session_id: None,
            authenticated: false,
        };
        Opening {
            last_event_id: None,
            history: 0,
            envelope: false,
            filter: EventFilter::default(),
            registration: Arc::new(Registry::new(10, 10))
                .register(claim, Value::Null)
                .unwrap(),
            expires_at: None,
        }
    }

    /// Publishes events `ids` and returns their messages as a client would get them.
    fn publish(settings: &Settings, ids: std::ops::RangeInclusive<i64>) -> Vec<String> {
        let mut expected = Vec::new();
        for id in ids {
            let frame = Frame::render(id, "newBoard", &json!({ "board_id": id }).to_string(), None);
            expected.push(event(&frame).to_string());
            settings.hub.publish(frame);
        }
        expected
    }

    async fn next(stream: &mut ClientStream, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        for _ in 0..n {
            got.push(stream.next_event().await.unwrap().to_string());
        }
        got
    }

    #[tokio::test]
    async fn a_stream_opens_with_its_position_then_who_it_is_for() {
        let (settings, _trigger) = settings(Duration::from_secs(3600));
        let mut stream = ClientStream::start(settings.clone(), opening());
        let opening = next(&mut stream, 2).await;
        assert_eq!(opening[0], ": pgsse stream open\nid:0\nretry:2000\n\n");
        assert!(
            opening[1].starts_with("event:connection\ndata:{\"client_id\":"),
            "{}",
            opening[1]
        );
    }

    #[tokio::test]
    async fn a_client_that_lags_behind_the_broadcast_catches_up_from_the_ring_in_order() {
        let (settings, _trigger) = settings(Duration::from_secs(3600));
        let mut stream = ClientStream::start(settings.clone(), opening());
        next(&mut stream, 2).await;
        // Ten events into a broadcast that holds four: the receiver has lagged.
        let expected = publish(&settings, 1..=10);
        assert_eq!(next(&mut stream, 10).await, expected);
        assert_eq!(settings.metrics.lag_resyncs.get(), 1);
        assert_eq!(settings.metrics.replayed_from_ring.get(), 10);
        // Back to live, with the copies still in the receiver skipped.
        let later = publish(&settings, 11..=11);
        assert_eq!(next(&mut stream, 1).await, later);
    }

    /// Publishes events `ids` of 20,000 bytes of data each (the ring holds three of them) and
    /// returns their messages.
    fn publish_large(settings: &Settings, ids: std::ops::RangeInclusive<i64>) -> Vec<String> {
        let mut expected = Vec::new();
        for id in ids {
            let data = format!("\"{}\"", "x".repeat(19_998));
            let frame = Frame::render(id, "big", &data, None);
            expected.push(event(&frame).to_string());
            settings.hub.publish(frame);
        }
        expected
    }

    #[tokio::test]
    async fn a_client_that_reaches_a_large_event_the_ring_let_go_reads_it_from_history() {
        let (settings, _trigger) = settings(Duration::from_secs(3600));
        let mut stream = ClientStream::start(settings.clone(), opening());
        next(&mut stream, 2).await;
        // Four events into a broadcast of four: no lag there, but the ring let event 1 go.
        publish_large(&settings, 1..=4);
        assert_eq!(settings.hub.position().floor, 1);
        // Not event 2: event 1 must come first, from the table (which these settings never
        // reach).
        let waiting = next(&mut stream, 1).await;
        assert_eq!(
            waiting,
            [": waiting for the database to replay history\n\n"]
        );
        assert_eq!(settings.metrics.lag_resyncs.get(), 1);
    }

    #[tokio::test]
    async fn a_large_event_gone_from_the_ring_that_a_client_already_has_is_skipped() {
        let (settings, _trigger) = settings(Duration::from_secs(3600));
        let resuming = Opening {
            last_event_id: Some(1),
            ..opening()
        };
        let mut stream = ClientStream::start(settings.clone(), resuming);
        let published = publish_large(&settings, 1..=4);
        next(&mut stream, 2).await;
        assert_eq!(next(&mut stream, 3).await, published[1..]);
        let live = publish_large(&settings, 5..=5);
        assert_eq!(next(&mut stream, 1).await, live);
        assert_eq!(settings.metrics.lag_resyncs.get(), 0);
    }

    #[tokio::test]
    async fn a_client_behind_for_too_long_is_disconnected_to_resume() {
        let (settings, _trigger) = settings(Duration::ZERO);
        let mut stream = ClientStream::start(settings.clone(), opening());
        next(&mut stream, 2).await;
        publish(&settings, 1..=10);
        assert!(stream.next_event().await.is_none());
        assert_eq!(settings.metrics.forced_disconnects.get(), 1);
    }

    #[tokio::test]
    async fn a_new_stream_with_history_replays_the_last_ids_then_follows_live_ones() {
        let (settings, _trigger) = settings(Duration::from_secs(3600));
        let published = publish(&settings, 1..=10);
        let with_history = Opening {
            history: 3,
            ..opening()
        };
        let mut stream = ClientStream::start(settings.clone(), with_history);
        let opening = next(&mut stream, 2).await;
        assert_eq!(opening[0], ": pgsse stream open\nid:7\nretry:2000\n\n");
        assert_eq!(next(&mut stream, 3).await, published[7..]);
        let live = publish(&settings, 11..=11);
        assert_eq!(next(&mut stream, 1).await, live);
    }

    #[tokio::test]
    async fn an_enveloped_stream_names_no_event_and_carries_each_kind_in_its_data() {
        let (settings, _trigger) = settings(Duration::from_secs(3600));
        let enveloped = Opening {
            envelope: true,
            ..opening()
        };
        let mut stream = ClientStream::start(settings.clone(), enveloped);
        let opening = next(&mut stream, 2).await;
        assert!(
            opening[1].starts_with("data:{\"kind\":\"connection\",\"data\":{\"client_id\":"),
            "{}",
            opening[1]
        );
        publish(&settings, 1..=1);
        settings.hub.pruned(5);
        let got = next(&mut stream, 2).await;
        assert_eq!(
            got[0],
            "data:{\"kind\":\"newBoard\",\"data\":{\"board_id\":1}}\nid:1\n\n"
        );
        assert!(
            got[1].starts_with("data:{\"kind\":\"resync\",\"data\":{\"reason\":\"pruned\""),
            "{}",
            got[1]
        );
        assert!(got.iter().chain(&opening).all(|m| !m.contains("event:")));
    }
}
