//! One client's event stream.
//!
//! A client is a cursor over the event log: the id of the last event it has been sent. It is
//! subscribed to the hub before anything is read, then catches up from history (the ring, or the
//! table when the ring no longer reaches back far enough), then follows live frames, skipping any
//! id at or below its cursor. So history and live meet without a gap or a duplicate, and a client
//! that lags behind the broadcast simply catches up again from its cursor: nothing is skipped.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::{Instant, Sleep};

use super::State;
use crate::event::Frame;
use crate::metrics;
use crate::shutdown::Shutdown;
use crate::store::events;

/// Sent first on every stream: how long a browser waits before reconnecting, and a comment so
/// that proxies and clients see the stream open at once.
const PREAMBLE: &[u8] = b"retry: 2000\n: pgsse stream open\n\n";
const KEEPALIVE: &[u8] = b": keep-alive\n\n";
const WAITING: &[u8] = b": waiting for the database to replay history\n\n";
/// Frames pending for one client are written together, up to about this many bytes.
const COALESCE_BYTES: usize = 64 * 1024;
/// Events per history read, from the ring or the table.
const REPLAY_PAGE: usize = 500;
/// Pause before retrying a history read that failed because the database is unavailable.
const REPLAY_RETRY: Duration = Duration::from_secs(1);

pub struct ClientStream {
    state: Arc<State>,
    receiver: broadcast::Receiver<Arc<Frame>>,
    /// The id of the last event this client has been sent.
    cursor: i64,
    /// Set while the client must read history before following live frames.
    catching_up: bool,
    opened: bool,
    /// Fires when the stream may have been quiet for a keep-alive interval.
    idle: Pin<Box<Sleep>>,
    last_write: Instant,
    shutdown: Shutdown,
}

/// What one step of the stream produced.
enum Step {
    Send(Bytes),
    Continue,
    End,
}

impl ClientStream {
    /// A stream that starts after event `last_event_id`, or live when there is none.
    pub fn start(state: Arc<State>, last_event_id: Option<i64>) -> ClientStream {
        let subscription = state.hub.subscribe();
        let (cursor, catching_up) = match last_event_id {
            Some(id) => (id, true),
            None => (subscription.last_id, false),
        };
        state.metrics.clients_connected.fetch_add(1, Relaxed);
        let now = Instant::now();
        ClientStream {
            receiver: subscription.receiver,
            cursor,
            catching_up,
            opened: false,
            idle: Box::pin(tokio::time::sleep_until(now + state.keepalive)),
            last_write: now,
            shutdown: state.shutdown.clone(),
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

    async fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.opened {
            self.opened = true;
            return Some(self.wrote(Bytes::from_static(PREAMBLE)));
        }
        loop {
            let step = if self.catching_up {
                self.catch_up().await
            } else {
                tokio::select! {
                    () = self.shutdown.fired() => Step::End,
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
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    fn lagged(&mut self, missed: u64) {
        log::info!(
            "client fell {missed} events behind the broadcast after event {}; catching up from history",
            self.cursor
        );
        metrics::inc(&self.state.metrics.lag_resyncs);
        self.catching_up = true;
    }

    /// Adds a frame unless the client already has it.
    fn take(&mut self, frame: &Frame, chunk: &mut Chunk) {
        if frame.id <= self.cursor {
            return;
        }
        self.cursor = frame.id;
        chunk.push(frame.bytes.clone());
    }

    fn deliver(&self, chunk: Chunk) -> Step {
        metrics::add(&self.state.metrics.frames_delivered, chunk.frames);
        chunk.into_step()
    }

    /// Sends the next page of history, or switches to live frames when there is none.
    async fn catch_up(&mut self) -> Step {
        let (frames, source) = match self.state.hub.frames_after(self.cursor, REPLAY_PAGE) {
            Some(frames) => (frames, &self.state.metrics.replayed_from_ring),
            None => {
                let read = read_table(&self.state, self.cursor);
                let frames = tokio::select! {
                    frames = read => frames,
                    () = self.shutdown.fired() => return Step::End,
                };
                match frames {
                    Ok(frames) => (frames, &self.state.metrics.replayed_from_table),
                    Err(err) => return self.replay_failed(err).await,
                }
            }
        };
        metrics::add(source, frames.len() as u64);
        if frames.is_empty() {
            self.catching_up = false;
            return Step::Continue;
        }
        let mut chunk = Chunk::default();
        for frame in &frames {
            self.take(frame, &mut chunk);
        }
        self.deliver(chunk)
    }

    /// Keeps the stream open while the database is away, and tries again shortly.
    async fn replay_failed(&mut self, err: String) -> Step {
        log::warn!(
            "cannot replay history after event {}: {err}; retrying",
            self.cursor
        );
        tokio::select! {
            () = tokio::time::sleep(REPLAY_RETRY) => Step::Send(Bytes::from_static(WAITING)),
            () = self.shutdown.fired() => Step::End,
        }
    }

    fn idle_elapsed(&mut self) -> Step {
        let now = Instant::now();
        let due = self.last_write + self.state.keepalive;
        if now >= due {
            self.idle.as_mut().reset(now + self.state.keepalive);
            Step::Send(Bytes::from_static(KEEPALIVE))
        } else {
            // Something was written meanwhile; the timer is moved only now, not on every write.
            self.idle.as_mut().reset(due);
            Step::Continue
        }
    }

    fn wrote(&mut self, chunk: Bytes) -> Bytes {
        self.last_write = Instant::now();
        chunk
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        self.state.metrics.clients_connected.fetch_sub(1, Relaxed);
    }
}

/// A page of events after `after` from the event table.
async fn read_table(state: &State, after: i64) -> Result<Vec<Arc<Frame>>, String> {
    let client = state.pool.get().await.map_err(|e| e.to_string())?;
    let statement = client
        .prepare_cached(events::EVENTS_AFTER)
        .await
        .map_err(|e| e.to_string())?;
    let frames = events::after(&client, &statement, after, REPLAY_PAGE as i64)
        .await
        .map_err(|e| e.to_string())?;
    Ok(frames.into_iter().map(Arc::new).collect())
}

/// Bytes to write in one go: a lone frame's shared bytes as they are, several frames copied
/// together.
#[derive(Default)]
struct Chunk {
    first: Option<Bytes>,
    joined: Option<BytesMut>,
    frames: u64,
}

impl Chunk {
    fn push(&mut self, bytes: Bytes) {
        self.frames += 1;
        match (&mut self.first, &mut self.joined) {
            (None, _) => self.first = Some(bytes),
            (Some(_), Some(joined)) => joined.extend_from_slice(&bytes),
            (Some(first), None) => {
                let mut joined = BytesMut::with_capacity(first.len() + bytes.len());
                joined.extend_from_slice(first);
                joined.extend_from_slice(&bytes);
                self.joined = Some(joined);
            }
        }
    }

    fn len(&self) -> usize {
        match (&self.first, &self.joined) {
            (_, Some(joined)) => joined.len(),
            (Some(first), None) => first.len(),
            (None, None) => 0,
        }
    }

    fn into_step(self) -> Step {
        match (self.first, self.joined) {
            (_, Some(joined)) => Step::Send(joined.freeze()),
            (Some(first), None) => Step::Send(first),
            (None, None) => Step::Continue,
        }
    }
}
