//! One client's event stream.
//!
//! A client is a cursor over the event log: the id of the last event it has been sent (or passed
//! over, when its filter did not want it). It is subscribed to the hub before anything is read,
//! then catches up from history (the ring, or the table when the ring no longer reaches back far
//! enough), then follows live frames, skipping any id at or below its cursor. So history and live
//! meet without a gap or a duplicate, and a client that lags behind the broadcast catches up
//! again from its cursor: nothing is skipped.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::{Instant, Sleep};

use super::chunk::Chunk;
use super::filter::EventFilter;
use super::gate::Gated;
use super::State;
use crate::db;
use crate::event::Frame;
use crate::metrics;
use crate::registry::{self, Entry, Registration};
use crate::shutdown::Shutdown;
use crate::store::events;

/// Sent first on every stream, around the stream's position: how long a browser waits before
/// reconnecting, and a comment so that proxies and clients see the stream open at once.
const RETRY: &str = "retry: 2000\n";
const OPEN: &str = ": pgsse stream open\n\n";
const KEEPALIVE: &[u8] = b": keep-alive\n\n";
const WAITING: &[u8] = b": waiting for the database to replay history\n\n";
/// Frames pending for one client are written together, up to about this many bytes.
const COALESCE_BYTES: usize = 64 * 1024;
/// Events per history read, from the ring or the table.
const REPLAY_PAGE: usize = 500;
/// Pause before retrying a history read that failed because the database is unavailable.
const REPLAY_RETRY: Duration = Duration::from_secs(1);
/// A client whose filter passes events over is told its position (an id-only frame) at least
/// every this many ids, so that a reconnect does not replay a long filtered-out stretch.
const POSITION_EVERY: u32 = 500;

/// What a stream starts from.
pub struct Opening {
    /// Where to resume; `None` starts live.
    pub last_event_id: Option<i64>,
    pub filter: EventFilter,
    /// Who is listening; also how the stream is listed and closed when its user has too many.
    pub registration: Registration,
    /// When the stream must end because its access token expires.
    pub expires_in: Option<Duration>,
}

pub struct ClientStream {
    state: Arc<State>,
    receiver: broadcast::Receiver<Arc<Frame>>,
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
    /// Since when the client has been behind the live stream, if it is.
    behind_since: Option<Instant>,
    /// Set when the client is to be disconnected after the chunk in hand.
    hopeless: bool,
    opened: bool,
    /// Fires when the stream may have been quiet for a keep-alive interval.
    idle: Gated<Pin<Box<Sleep>>>,
    last_write: Instant,
}

/// Why a stream ends on the server's side.
enum Close {
    Shutdown,
    Evicted,
    Expired,
}

/// What one step of the stream produced.
pub(super) enum Step {
    Send(Bytes),
    Continue,
    End,
}

impl ClientStream {
    /// Opens a stream as `opening` describes.
    pub fn start(state: Arc<State>, opening: Opening) -> ClientStream {
        let subscription = state.hub.subscribe();
        let started = subscription.last_id.is_some();
        let cursor = opening
            .last_event_id
            .or(subscription.last_id)
            .unwrap_or_default();
        let now = Instant::now();
        let closing = Gated::new(closing(
            state.shutdown.clone(),
            opening.registration.entry.clone(),
            opening.expires_in.map(|left| now + left),
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
            catching_up: opening.last_event_id.is_some(),
            behind_since: None,
            hopeless: false,
            opened: false,
            idle: Gated::new(Box::pin(tokio::time::sleep_until(now + state.keepalive))),
            last_write: now,
            state,
        }
    }

    /// The response body: chunks of SSE text until the client leaves or the server stops.
    pub fn into_body(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + Sync {
        let chunks = futures_util::stream::unfold(self, |mut stream| async move {
            let chunk = stream.next_chunk().await?;
            Some((Ok(chunk), stream))
        });
        // The body must be Sync; the stream is only ever polled through `&mut`, which is what
        // SyncStream relies on.
        sync_wrapper::SyncStream::new(chunks)
    }

    /// The next bytes to write, or `None` when the stream is over. Cancelling it loses nothing.
    pub(super) async fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.opened {
            self.opened = true;
            let opening = self.opening();
            return Some(self.wrote(Bytes::from(opening)));
        }
        loop {
            if self.hopeless {
                return None;
            }
            let step = if self.awaiting_start {
                self.await_start().await
            } else if self.catching_up {
                self.catch_up().await
            } else {
                // In this order: a flood of events must not hold off the end of a stream.
                tokio::select! {
                    biased;
                    close = &mut self.closing => self.closed(close),
                    received = self.receiver.recv() => self.received(received),
                    () = &mut self.idle => self.idle_elapsed(),
                }
            };
            match step {
                Step::Send(chunk) => return Some(self.wrote(chunk)),
                Step::Continue => continue,
                Step::End => return None,
            }
        }
    }

    /// Completes when the server ends the stream (shutdown, eviction, token expiry), for a writer
    /// that is waiting on the client. Not to be awaited again once it completed.
    pub(super) async fn closing(&mut self) {
        (&mut self.closing).await;
    }

    fn received(&mut self, received: Result<Arc<Frame>, RecvError>) -> Step {
        match received {
            Ok(frame) => {
                let mut chunk = Chunk::default();
                self.take(&frame, &mut chunk);
                self.take_pending(&mut chunk);
                self.deliver(chunk)
            }
            Err(RecvError::Lagged(missed)) => {
                self.lagged(missed);
                Step::Continue
            }
            Err(RecvError::Closed) => Step::End,
        }
    }

    /// Adds frames already waiting in the receiver, so that a busy client gets one write for
    /// several events.
    fn take_pending(&mut self, chunk: &mut Chunk) {
        while chunk.len() < COALESCE_BYTES {
            match self.receiver.try_recv() {
                Ok(frame) => self.take(&frame, chunk),
                Err(TryRecvError::Lagged(missed)) => return self.lagged(missed),
                Err(TryRecvError::Empty) => {
                    self.behind_since = None;
                    return;
                }
                Err(TryRecvError::Closed) => return,
            }
        }
    }

    /// The client fell behind the broadcast: it catches up from history, or, if it has been
    /// behind for too long already, is disconnected so that it resumes with Last-Event-ID.
    fn lagged(&mut self, missed: u64) {
        let since = *self.behind_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.state.slow_client {
            log::warn!(
                "disconnecting a client at event {}: behind the live stream for {} s and {missed} \
                 more events behind now; it will resume from there",
                self.cursor,
                since.elapsed().as_secs()
            );
            metrics::inc(&self.state.metrics.forced_disconnects);
            self.hopeless = true;
            return;
        }
        log::info!(
            "a client fell {missed} events behind after event {}; catching up from history",
            self.cursor
        );
        metrics::inc(&self.state.metrics.lag_resyncs);
        self.catching_up = true;
    }

    /// Adds a frame unless the client already has it, it is meant for someone else, or the
    /// client's filter does not want it.
    fn take(&mut self, frame: &Frame, chunk: &mut Chunk) {
        if frame.id <= self.cursor {
            return;
        }
        if frame.is_gap() {
            return chunk.push(self.resync(frame.id));
        }
        self.cursor = frame.id;
        let entry = &self.registration.entry;
        let for_viewer = frame
            .target
            .as_ref()
            .is_none_or(|t| t.admits(&entry.viewer));
        if for_viewer && self.filter.accepts(frame) {
            chunk.push_event(frame.bytes.clone());
            entry.sent(frame.id);
            self.told = frame.id;
        } else if self.cursor - self.told >= i64::from(POSITION_EVERY) {
            chunk.push(position(self.cursor, ""));
            self.told = self.cursor;
        }
    }

    fn deliver(&self, chunk: Chunk) -> Step {
        metrics::add(&self.state.metrics.frames_delivered, chunk.events);
        chunk.into_step()
    }

    /// Waits, with keep-alives, until the hub knows where the event log stands (the database had
    /// not been reached when the stream opened). Then a live client is told its position, the
    /// id the hub started after (every later event is in its receiver), and a resuming one goes
    /// on to catch up from its own.
    async fn await_start(&mut self) -> Step {
        let hub = self.state.hub.clone();
        // Boxed: only streams opened before the database was reached ever wait here.
        let started = Box::pin(async move { hub.started().await });
        let start = tokio::select! {
            biased;
            close = &mut self.closing => return self.closed(close),
            start = started => start,
            () = &mut self.idle => return self.idle_elapsed(),
        };
        self.awaiting_start = false;
        if self.positioned {
            return Step::Continue;
        }
        self.positioned = true;
        self.cursor = start;
        self.told = start;
        Step::Send(position(start, ""))
    }

    /// Sends the next page of history, or switches to live frames when there is none.
    async fn catch_up(&mut self) -> Step {
        // What was pruned is gone whether or not this gateway's ring still holds it, so that a
        // client is told the same on every gateway and after a restart.
        let known_pruned = self.state.hub.position().pruned_through;
        let (frames, pruned_through) = match self.state.hub.frames_after(self.cursor, REPLAY_PAGE) {
            Some(frames) => {
                metrics::add(&self.state.metrics.replayed_from_ring, frames.len() as u64);
                (frames, None)
            }
            None => {
                // Boxed: history reads are rare, and their state would otherwise enlarge every
                // idle stream's future.
                let read = Box::pin(read_table(&self.state, self.cursor));
                let page = tokio::select! {
                    page = read => page,
                    close = &mut self.closing => return self.closed(close),
                };
                match page {
                    Ok((frames, pruned_through)) => {
                        metrics::add(&self.state.metrics.replayed_from_table, frames.len() as u64);
                        (frames, Some(pruned_through))
                    }
                    Err(err) => return self.replay_failed(err).await,
                }
            }
        };
        let mut chunk = Chunk::default();
        let pruned_through = pruned_through.map_or(known_pruned, |p| p.max(known_pruned));
        if pruned_through > self.cursor {
            chunk.push(self.resync(pruned_through));
        }
        if frames.is_empty() && chunk.len() == 0 {
            self.catching_up = false;
            return Step::Continue;
        }
        for frame in &frames {
            self.take(frame, &mut chunk);
        }
        // A page that was all filtered out is a Continue: read on.
        self.deliver(chunk)
    }

    /// The `resync` frame for a client whose position is older than what is retained.
    fn resync(&mut self, pruned_through: i64) -> Bytes {
        log::info!(
            "a client resuming after event {} is told to resync: events up to {pruned_through} \
             were pruned",
            self.cursor
        );
        let data = json!({
            "reason": "pruned",
            "message": format!(
                "events after {} up to {pruned_through} are no longer retained; refetch your state",
                self.cursor
            ),
            "last_event_id": self.cursor,
            "resumes_after": pruned_through,
        });
        self.cursor = pruned_through;
        self.told = pruned_through;
        position(pruned_through, &format!("event: resync\ndata: {data}\n"))
    }

    /// Keeps the stream open while the database is away, and tries again shortly.
    async fn replay_failed(&mut self, err: String) -> Step {
        log::warn!(
            "cannot replay history after event {}: {err}; retrying",
            self.cursor
        );
        tokio::select! {
            () = tokio::time::sleep(REPLAY_RETRY) => Step::Send(Bytes::from_static(WAITING)),
            close = &mut self.closing => self.closed(close),
        }
    }

    fn idle_elapsed(&mut self) -> Step {
        let now = Instant::now();
        let due = self.last_write + self.state.keepalive;
        if now < due {
            // Something was written meanwhile; the timer is moved only now, not on every write.
            self.idle.get_mut().as_mut().reset(due);
            return Step::Continue;
        }
        self.idle
            .get_mut()
            .as_mut()
            .reset(now + self.state.keepalive);
        if self.told < self.cursor {
            // A filtered client's keep-alive also carries its position.
            self.told = self.cursor;
            return Step::Send(position(self.cursor, ": keep-alive\n"));
        }
        Step::Send(Bytes::from_static(KEEPALIVE))
    }

    /// The stream's first bytes. The first block carries the stream's position, the id it starts
    /// after, without data: a browser dispatches nothing for it but takes the id as its
    /// Last-Event-ID, so a stream cut before its first event resumes from where it began instead
    /// of starting live again and missing what committed meanwhile. Then `event: connection`: who
    /// the stream is for and the server's time, as apps built for NestJS-style SSE modules
    /// expect. It has no id of its own.
    fn opening(&self) -> String {
        let viewer = &self.registration.entry.viewer;
        let data = json!({
            "client_id": viewer.client_id,
            "user": viewer.user,
            "session_id": viewer.session_id,
            "server_time": registry::rfc3339(std::time::SystemTime::now()),
        });
        // Before the database is reached a live stream's position is not known yet; it follows
        // as soon as it is.
        let position = match self.positioned {
            true => format!("id: {}\n", self.cursor),
            false => String::new(),
        };
        format!("{RETRY}{position}{OPEN}event: connection\ndata: {data}\n\n")
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

    fn wrote(&mut self, chunk: Bytes) -> Bytes {
        self.last_write = Instant::now();
        chunk
    }
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

/// A frame that moves the client's Last-Event-ID to `id`, with more lines (ending in `\n`) after
/// the id. Without `data` a browser dispatches no event but still records the id.
fn position(id: i64, rest: &str) -> Bytes {
    Bytes::from(format!("id: {id}\n{rest}\n"))
}

/// A page of events after `after` from the event table, and how far the table was pruned.
async fn read_table(state: &State, after: i64) -> Result<(Vec<Arc<Frame>>, i64), String> {
    let read = async {
        let client = state.pool.get().await.map_err(|e| e.to_string())?;
        let statement = client
            .prepare_cached(events::EVENTS_AFTER)
            .await
            .map_err(|e| e.to_string())?;
        events::after(&client, &statement, after, REPLAY_PAGE as i64)
            .await
            .map_err(|e| e.to_string())
    };
    let page = tokio::time::timeout(db::QUERY_TIMEOUT, read)
        .await
        .map_err(|_| format!("no answer within {:?}", db::QUERY_TIMEOUT))??;
    let frames = page.frames.into_iter().map(Arc::new).collect();
    Ok((frames, page.pruned_through))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Hub;
    use crate::metrics::Metrics;
    use crate::registry::Registry;
    use crate::{config::Config, db, shutdown};
    use serde_json::Value;
    use std::sync::atomic::Ordering::Relaxed;

    /// A state whose database is never reached: these streams are served from memory.
    fn state(slow_client: Duration) -> (Arc<State>, shutdown::Trigger) {
        let config = Config::from_lookup(|name| {
            (name == "DATABASE_URL").then(|| "postgres://nobody@127.0.0.1:1/none".to_owned())
        })
        .unwrap();
        let (trigger, shutdown) = shutdown::channel();
        let state = State {
            pool: db::pool(&config),
            hub: Arc::new(Hub::new(4, 100)),
            metrics: Arc::new(Metrics::default()),
            keepalive: Duration::from_secs(60),
            slow_client,
            stream_send_buffer: None,
            shutdown,
            auth: None,
            registry: Arc::new(Registry::new(10)),
            demo_tokens: false,
        };
        state.hub.start(Default::default());
        (Arc::new(state), trigger)
    }

    fn opening(state: &State) -> Opening {
        Opening {
            last_event_id: None,
            filter: EventFilter::default(),
            registration: state.registry.register(None, None, None, Value::Null),
            expires_in: None,
        }
    }

    fn publish(state: &State, ids: std::ops::RangeInclusive<i64>) -> Vec<u8> {
        let mut expected = Vec::new();
        for id in ids {
            let frame = Frame::render(id, "newBoard", &json!({ "board_id": id }), None);
            expected.extend_from_slice(&frame.bytes);
            state.hub.publish(frame);
        }
        expected
    }

    #[tokio::test]
    async fn a_client_that_lags_behind_the_broadcast_catches_up_from_the_ring_in_order() {
        let (state, _trigger) = state(Duration::from_secs(3600));
        let mut stream = ClientStream::start(state.clone(), opening(&state));
        let first = stream.next_chunk().await.unwrap();
        let preamble = format!("{RETRY}id: 0\n{OPEN}");
        assert!(first.starts_with(preamble.as_bytes()) && first.ends_with(b"\n\n"));
        let connection = std::str::from_utf8(&first[preamble.len()..]).unwrap();
        assert!(
            connection.starts_with("event: connection\ndata: {\"client_id\":"),
            "{connection}"
        );
        // Ten events into a broadcast that holds four: the receiver has lagged.
        let expected = publish(&state, 1..=10);
        assert_eq!(stream.next_chunk().await.unwrap(), expected);
        assert_eq!(state.metrics.lag_resyncs.load(Relaxed), 1);
        assert_eq!(state.metrics.replayed_from_ring.load(Relaxed), 10);
        // Back to live, with the copies still in the receiver skipped.
        let next = publish(&state, 11..=11);
        assert_eq!(stream.next_chunk().await.unwrap(), next);
    }

    #[tokio::test]
    async fn a_client_behind_for_too_long_is_disconnected_to_resume() {
        let (state, _trigger) = state(Duration::ZERO);
        let mut stream = ClientStream::start(state.clone(), opening(&state));
        stream.next_chunk().await.unwrap();
        publish(&state, 1..=10);
        assert_eq!(stream.next_chunk().await, None);
        assert_eq!(state.metrics.forced_disconnects.load(Relaxed), 1);
    }
}
