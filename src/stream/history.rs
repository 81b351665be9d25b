//! History: what a stream reads before it follows live frames, a page at a time, from the ring
//! or the table, with a `resync` for what was pruned; and, for a stream that resumes, where the
//! event log ends. The only reads of the log a stream makes are here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use warp::sse::Event;

use super::{ClientStream, Settings, Step, REPLAY_PAGE, REPLAY_RETRY};
use crate::db::{self, QueryError};
use crate::event::Frame;
use crate::metrics::ReadBy;
use crate::store::events;

impl ClientStream {
    /// Queues the next page of history, or switches to live frames when there is none.
    pub(super) async fn catch_up(&mut self) -> Step {
        // What was pruned is gone whether or not this gateway's ring still holds it, so that a
        // client is told the same on every gateway and after a restart.
        let known_pruned = self.settings.hub.position().pruned_through;
        let ring = self
            .settings
            .hub
            .frames_after(self.cursor, REPLAY_PAGE, events::PAGE_BYTES);
        let (frames, pruned_through) = match ring {
            Some(frames) => {
                let replayed = &self.settings.metrics.replayed_from_ring;
                replayed.inc_by(frames.len() as u64);
                (frames, None)
            }
            None => {
                // Boxed: history reads are rare, and their state would otherwise enlarge every
                // idle stream's future.
                let read = Box::pin(read_table(&self.settings, self.cursor));
                let page = tokio::select! {
                    page = read => page,
                    close = &mut self.closing => return self.closed(close),
                };
                match page {
                    Ok((frames, pruned_through)) => {
                        let replayed = &self.settings.metrics.replayed_from_table;
                        replayed.inc_by(frames.len() as u64);
                        (frames, Some(pruned_through))
                    }
                    Err(err) => return self.replay_failed(err).await,
                }
            }
        };
        let pruned_through = pruned_through.map_or(known_pruned, |p| p.max(known_pruned));
        if pruned_through > self.cursor {
            let resync = self.resync(pruned_through);
            self.ready.push_back(resync);
        }
        if frames.is_empty() {
            self.catching_up = false;
        }
        for frame in &frames {
            self.take(frame);
        }
        Step::Continue
    }

    /// The `resync` event for a client whose position is older than what is retained.
    pub(super) fn resync(&mut self, pruned_through: i64) -> Event {
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
        self.named("resync", data).id(pruned_through.to_string())
    }

    /// Keeps the stream open while the database is away, and tries again shortly.
    async fn replay_failed(&mut self, err: QueryError) -> Step {
        log::warn!(
            "cannot replay history after event {}: {err}; retrying",
            self.cursor
        );
        tokio::select! {
            () = tokio::time::sleep(REPLAY_RETRY) => {
                let waiting = Event::default().comment(" waiting for the database to replay history");
                self.ready.push_back(waiting);
                Step::Continue
            }
            close = &mut self.closing => self.closed(close),
        }
    }
}

/// A page of events after `after` from the event table, and how far the table was pruned.
async fn read_table(settings: &Settings, after: i64) -> Result<(Vec<Arc<Frame>>, i64), QueryError> {
    let started = Instant::now();
    let page = db::query_within(&settings.pool, db::POOL_TIMEOUT, async |client| {
        let statement = client.prepare_cached(events::EVENTS_AFTER).await?;
        events::after(client, &statement, after, REPLAY_PAGE as i64).await
    })
    .await?;
    let took = started.elapsed();
    settings
        .metrics
        .catch_up_read(ReadBy::Stream, took, page.frames.len());
    let frames = page.frames.into_iter().map(Arc::new).collect();
    Ok((frames, page.pruned_through))
}

/// Where a stream resuming after `id` starts. An id beyond the newest event (from another
/// database, say) starts the client live rather than making it wait until ids pass it.
pub(super) async fn resume_after(settings: &Settings, id: i64) -> i64 {
    if id <= settings.hub.position().last_id {
        return id;
    }
    let read = db::query_within(&settings.pool, NEWEST_TIMEOUT, async |client| {
        events::position(client, Duration::ZERO).await
    })
    .await;
    match read {
        Ok(log) => id.min(log.last_id.max(log.pruned_through)),
        Err(err) if settings.hub.is_started() => {
            log::warn!("cannot check resume id {id} against the event log ({err}); starting live");
            settings.hub.position().last_id
        }
        // The database has not been reached yet; the stream waits for it and resumes from `id`.
        Err(_) => id,
    }
}

/// How long a stream request waits for the event log's newest id before it decides without it.
const NEWEST_TIMEOUT: Duration = Duration::from_secs(2);
