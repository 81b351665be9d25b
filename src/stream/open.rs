//! Opening a stream: the request as the route checked it, and what opening it does. A resume id
//! beyond the newest event is clamped to the event log, the stream is registered (unless
//! `MAX_STREAMS` are open) and it starts.

use std::sync::Arc;

use tokio::time::Instant;

use super::{history, ClientStream, EventFilter, Opening, Settings};
use crate::registry::{Claim, Full};

/// A stream request that passed every check the route makes (no I/O was needed for them).
pub struct Request {
    /// Where to resume (`Last-Event-ID`, or `lastEventId`); `None` starts live.
    pub last_event_id: Option<i64>,
    /// `?history=`: how many ids back a stream that does not resume starts; 0 for none.
    pub history: i64,
    /// `?envelope=1`: every event unnamed, its name in its data.
    pub envelope: bool,
    pub filter: EventFilter,
    /// Who the stream says it is, or who its token says it is.
    pub claim: Claim,
    /// When the stream must end because its access token expires.
    pub expires_at: Option<Instant>,
}

/// Why a stream was not opened; counted in `streams_refused`.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the gateway is serving its maximum of {max_streams} streams (MAX_STREAMS)")]
    Full { max_streams: usize },
}

/// Opens the stream `request` asks for, unless `MAX_STREAMS` are open.
pub async fn open(settings: &Arc<Settings>, request: Request) -> Result<ClientStream, Refused> {
    let last_event_id = match request.last_event_id {
        Some(id) => Some(history::resume_after(settings, id).await),
        None => None,
    };
    let registration = (settings.registry)
        .register(request.claim, request.filter.describe())
        .map_err(|full| refused(settings, full))?;
    let opening = Opening {
        last_event_id,
        history: request.history,
        envelope: request.envelope,
        filter: request.filter,
        registration,
        expires_at: request.expires_at,
    };
    Ok(ClientStream::start(settings.clone(), opening))
}

/// Whether a stream would be opened now, for a probe (`HEAD`): refused as [`open`] would
/// refuse it, without opening one.
pub fn room(settings: &Settings) -> Result<(), Refused> {
    settings
        .registry
        .room()
        .map_err(|full| refused(settings, full))
}

fn refused(settings: &Settings, full: Full) -> Refused {
    settings.metrics.streams_refused.inc();
    Refused::Full {
        max_streams: full.max_streams,
    }
}
