//! What a stream reads of the event log: pages of history after its cursor, from the ring or
//! the table, before it follows live frames; and, for a stream that resumes, where the log ends.
//! The only reads of the log a stream makes are here, each through `store` and under a deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Settings, REPLAY_PAGE};
use crate::db::{self, QueryError};
use crate::event::Frame;
use crate::metrics::ReadBy;
use crate::store::events;

/// A page of events after `after` from the ring, if the ring still reaches back that far.
pub(super) fn ring_page(settings: &Settings, after: i64) -> Option<Vec<Arc<Frame>>> {
    let hub = &settings.hub;
    let frames = hub.frames_after(after, REPLAY_PAGE, events::PAGE_BYTES)?;
    let replayed = &settings.metrics.replayed_from_ring;
    replayed.inc_by(frames.len() as u64);
    Some(frames)
}

/// A page of events after `after` from the event table, and how far the table was pruned.
pub(super) async fn table_page(
    settings: &Settings,
    after: i64,
) -> Result<(Vec<Arc<Frame>>, i64), QueryError> {
    let started = Instant::now();
    let page = db::query_within(&settings.pool, db::POOL_TIMEOUT, async |client| {
        let statement = client.prepare_cached(events::EVENTS_AFTER).await?;
        events::after(client, &statement, after, REPLAY_PAGE as i64).await
    })
    .await?;
    let metrics = &settings.metrics;
    metrics.catch_up_read(ReadBy::Stream, started.elapsed(), page.frames.len());
    metrics.replayed_from_table.inc_by(page.frames.len() as u64);
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
