//! One client's stream: a cursor over the event log and the phase it is in. It opens, waits for
//! the database if it has not been reached yet, catches up from history, then follows live
//! frames, and catches up again whenever it falls behind them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, Sleep};
use warp::sse::Event;

use super::close::{closing, Close};
use super::phase::{self, Next, Phase};
use super::{history, render, EventFilter, Opening, Settings};
use super::{OPENING_EVENTS, POSITION_EVERY, REPLAY_RETRY};
use crate::db::QueryError;
use crate::event::Frame;
use crate::gate::Gated;
use crate::hub::{Hub, Live};
use crate::registry::Registration;

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
    phase: Phase,
    /// See [`Opening::history`].
    history: i64,
    /// See [`Opening::envelope`].
    envelope: bool,
    /// Since when the client has been behind the live stream, if it is.
    behind_since: Option<Instant>,
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

/// What one step of the stream produced (its events are in `ready`).
enum Step {
    Continue,
    End,
}

impl ClientStream {
    /// Opens a stream as `opening` describes.
    pub fn start(settings: Arc<Settings>, opening: Opening) -> ClientStream {
        let subscription = settings.hub.subscribe();
        let resuming = opening.last_event_id.is_some();
        let history = if resuming { 0 } else { opening.history };
        let cursor = match (opening.last_event_id, subscription.last_id) {
            (Some(id), _) => id,
            (None, Some(newest)) => back_from(&settings.hub, newest, history),
            (None, None) => 0,
        };
        let then = phase::after_opening(subscription.last_id.is_some(), resuming, history);
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
            phase: Phase::Opening { then },
            history,
            envelope: opening.envelope,
            behind_since: None,
            // Room for the opening's events, and then for each live event in turn.
            ready: VecDeque::with_capacity(OPENING_EVENTS),
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
            if let Some(event) = self.next_ready() {
                return Some(event);
            }
            let step = match self.phase {
                Phase::Opening { then } => self.open(then),
                Phase::AwaitingStart { resuming } => self.await_start(resuming).await,
                Phase::CatchingUp => self.catch_up().await,
                Phase::Following => self.follow().await,
                Phase::Ending => Step::End,
            };
            if let Step::End = step {
                return None;
            }
        }
    }

    fn next_ready(&mut self) -> Option<Event> {
        let event = self.ready.pop_front()?;
        if self.ready.is_empty() && self.ready.capacity() > OPENING_EVENTS {
            // A page of history has gone: an idle stream keeps no room for the next.
            self.ready = VecDeque::with_capacity(OPENING_EVENTS);
        }
        Some(event)
    }

    /// Queues the stream's opening (see [`render::opening`]). Before the database is reached a
    /// live stream's position is not known yet; it follows as soon as it is.
    fn open(&mut self, then: Next) -> Step {
        let placed = then != Next::AwaitingStart { resuming: false };
        let hub = &self.settings.hub;
        let newest_id = hub.is_started().then(|| hub.position().last_id);
        let viewer = &self.registration.entry.viewer;
        let opening = render::opening(
            placed.then_some(self.cursor),
            viewer,
            newest_id,
            self.envelope,
        );
        self.ready.extend(opening);
        self.phase = then.into();
        Step::Continue
    }

    /// Waits until the hub knows where the event log stands (the database had not been reached
    /// when the stream opened); warp's keep-alives keep the stream open meanwhile. Then a live
    /// client is told its position, the id the hub started after (every later event is in its
    /// receiver), and a resuming one goes on to catch up from its own.
    async fn await_start(&mut self, resuming: bool) -> Step {
        let hub = self.settings.hub.clone();
        // Boxed: only streams opened before the database was reached ever wait here.
        let started = Box::pin(async move { hub.started().await });
        let start = tokio::select! {
            biased;
            close = &mut self.closing => return self.closed(close),
            start = started => start,
        };
        if resuming {
            self.phase = Phase::CatchingUp;
            return Step::Continue;
        }
        self.cursor = back_from(&self.settings.hub, start, self.history);
        self.told = self.cursor;
        self.ready.push_back(render::position(self.cursor));
        self.phase = match self.cursor < start {
            true => Phase::CatchingUp,
            false => Phase::Following,
        };
        Step::Continue
    }

    /// Queues the next page of history, or switches to live frames when there is none.
    async fn catch_up(&mut self) -> Step {
        // What was pruned is gone whether or not this gateway's ring still holds it, so that a
        // client is told the same on every gateway and after a restart.
        let known_pruned = self.settings.hub.position().pruned_through;
        let (frames, pruned_through) = match history::ring_page(&self.settings, self.cursor) {
            Some(frames) => (frames, known_pruned),
            None => match self.read_table().await {
                Ok((frames, pruned_through)) => (frames, pruned_through.max(known_pruned)),
                Err(step) => return step,
            },
        };
        if pruned_through > self.cursor {
            self.resync(pruned_through);
        }
        if frames.is_empty() {
            self.phase = Phase::Following;
        }
        for frame in &frames {
            self.take(frame);
        }
        Step::Continue
    }

    /// A page of history from the table, and how far the table was pruned; or, when the stream
    /// ends or the read fails, the step it takes instead.
    async fn read_table(&mut self) -> Result<(Vec<Arc<Frame>>, i64), Step> {
        // Boxed: history reads are rare, and their state would otherwise enlarge every idle
        // stream's future.
        let read = Box::pin(history::table_page(&self.settings, self.cursor));
        let page = tokio::select! {
            page = read => page,
            close = &mut self.closing => return Err(self.closed(close)),
        };
        match page {
            Ok(page) => Ok(page),
            Err(err) => Err(self.replay_failed(err).await),
        }
    }

    /// Keeps the stream open while the database is away, and tries again shortly.
    async fn replay_failed(&mut self, err: QueryError) -> Step {
        log::warn!(
            "cannot replay history after event {}: {err}; retrying",
            self.cursor
        );
        tokio::select! {
            () = tokio::time::sleep(REPLAY_RETRY) => {
                self.ready.push_back(render::waiting_for_database());
                Step::Continue
            }
            close = &mut self.closing => self.closed(close),
        }
    }

    /// Tells a client whose position is older than what is retained to resync, and moves it
    /// past what was pruned.
    fn resync(&mut self, pruned_through: i64) {
        log::info!(
            "a client resuming after event {} is told to resync: events up to {pruned_through} \
             were pruned",
            self.cursor
        );
        let resync = render::resync(self.cursor, pruned_through, self.envelope);
        self.ready.push_back(resync);
        self.cursor = pruned_through;
        self.told = pruned_through;
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
            }
            // A large event the ring let go before this client got to it (a copy of one it has
            // already read from history is skipped, as `take` skips any).
            Ok(Err(id)) if id > self.cursor => self.lagged(Behind::Evicted(id)),
            Ok(Err(_)) => {}
            Err(RecvError::Lagged(missed)) => self.lagged(Behind::Missed(missed)),
            Err(RecvError::Closed) => return Step::End,
        }
        Step::Continue
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
            self.phase = Phase::Ending;
            return;
        }
        log::info!(
            "a client fell behind after event {} ({behind}); catching up from history",
            self.cursor
        );
        self.settings.metrics.lag_resyncs.inc();
        self.phase = Phase::CatchingUp;
    }

    /// Queues a frame unless the client already has it, it is meant for someone else, or the
    /// client's filter does not want it.
    fn take(&mut self, frame: &Frame) {
        if frame.id <= self.cursor {
            return;
        }
        if frame.is_gap() {
            return self.resync(frame.id);
        }
        self.cursor = frame.id;
        if self.wants(frame) {
            self.deliver(frame);
        } else {
            self.passed_over();
        }
    }

    /// Whether a frame is for this client, and its filter lets it through.
    fn wants(&self, frame: &Frame) -> bool {
        let viewer = &self.registration.entry.viewer;
        let for_viewer = frame.target.as_ref().is_none_or(|t| t.admits(viewer));
        for_viewer && self.filter.accepts(frame)
    }

    fn deliver(&mut self, frame: &Frame) {
        self.ready.push_back(render::frame(frame, self.envelope));
        self.registration.entry.sent(frame.id);
        let metrics = &self.settings.metrics;
        metrics.frames_delivered.inc();
        if let Some(delay) = frame.first_write() {
            metrics.first_write(delay);
        }
        self.told = frame.id;
    }

    /// The client's filter passed an event over: it is told its position every
    /// [`POSITION_EVERY`] ids, and after a keep-alive interval without an event.
    fn passed_over(&mut self) {
        if self.cursor - self.told >= POSITION_EVERY {
            self.ready.push_back(render::position(self.cursor));
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
            self.ready.push_back(render::position(self.cursor));
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
