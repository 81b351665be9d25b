//! The stream engine: one client's events, as warp's SSE support sends them.
//!
//! A client is a cursor over the event log: the id of the last event it has been sent (or passed
//! over, when its filter did not want it). It is subscribed to the hub before anything is read,
//! then catches up from history (the ring, or the table when the ring no longer reaches back far
//! enough), then follows live frames, skipping any id at or below its cursor. So history and live
//! meet without a gap or a duplicate, and a client that lags behind the broadcast (or reaches a
//! large event after the ring let it go, see [`crate::hub::Live`]) catches up again from its
//! cursor: nothing is skipped. The cursor is in `cursor`, its phases in `phase`; what it reads of the log,
//! in `history`; how its messages are written, in `render`; how a stream is opened, in `open`.
//!
//! Invariants: a stream holds at most one page of history at a time, bounded in events and in
//! bytes ([`crate::store::events::PAGE_BYTES`]); what it sends is strictly increasing in id; it
//! does no I/O of its own but history reads, and it never turns into an error once it has started
//! (a browser's `EventSource` gives up for good on one).

mod close;
mod cursor;
mod filter;
mod history;
mod open;
mod phase;
mod render;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::time::Instant;

pub use self::cursor::ClientStream;
pub use self::filter::EventFilter;
pub use self::open::{open, room, Refused, Request};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::registry::{Registration, Registry};
use crate::shutdown::Shutdown;

/// Events per history read, from the ring or the table.
const REPLAY_PAGE: usize = 500;
/// Pause before retrying a history read that failed because the database is unavailable.
const REPLAY_RETRY: Duration = Duration::from_secs(1);
/// A client whose filter passes events over is told its position (an id-only frame) at least
/// every this many ids, so that a reconnect does not replay a long filtered-out stretch.
const POSITION_EVERY: i64 = 500;
/// The events a stream opens with (see `render::opening`), and the room an idle stream keeps for
/// events ready to send.
const OPENING_EVENTS: usize = 2;

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
    /// Whether every event goes out unnamed, its name inside its data (see `render::frame`).
    pub envelope: bool,
    pub filter: EventFilter,
    /// Who is listening; also how the stream is listed and closed when its user has too many.
    pub registration: Registration,
    /// When the stream must end because its access token expires.
    pub expires_at: Option<Instant>,
}
