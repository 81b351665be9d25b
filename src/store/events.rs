//! Reads of the event log, `pgsse.event`, and its retention.

use std::time::Duration;

use tokio_postgres::{Client, Statement};

use crate::event::{Frame, LogPosition, Target};

/// Rows per read when catching up from the table.
pub const PAGE: i64 = 500;
/// About how many bytes of event data a page of history holds at most, whatever the events'
/// size: a client resuming from far back holds one page at a time.
pub const PAGE_BYTES: usize = 256 * 1024;

pub const EVENTS_AFTER: &str = include_str!("../../sql/events_after.sql");

/// How far the event log has been pruned, and how full the notification queue is.
pub const POLL: &str = include_str!("../../sql/listener_poll.sql");

/// What the listener's poll reads besides events.
pub struct Poll {
    /// Every event with an id at or below this has been deleted by retention.
    pub pruned_through: i64,
    pub queue: QueueFill,
}

/// How full PostgreSQL's notification queue is, and the fraction above which `pgsse.emit` leaves
/// notifications out (events then reach the gateway through its reads of the table).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueFill {
    pub usage: f64,
    pub limit: f64,
}

impl Default for QueueFill {
    /// An empty queue, as it is until the listener has looked.
    fn default() -> QueueFill {
        QueueFill {
            usage: 0.0,
            limit: 1.0,
        }
    }
}

impl QueueFill {
    /// Whether events are committed without a notification now.
    pub fn unnotified(&self) -> bool {
        self.usage >= self.limit
    }
}

/// Reads [`POLL`], prepared as `statement`.
pub async fn poll(client: &Client, statement: &Statement) -> Result<Poll, tokio_postgres::Error> {
    let row = client.query_one(statement, &[]).await?;
    Ok(Poll {
        pruned_through: row.get("pruned_through"),
        queue: QueueFill {
            usage: row.get("queue_usage"),
            limit: row.get("queue_limit"),
        },
    })
}

/// Events read from the table, and how far the log had been pruned when they were read.
pub struct Page {
    /// Whether the page may have stopped short of the events that follow (it holds as many
    /// events, or about as many bytes, as a page may), so that the reader reads on.
    pub full: bool,
    /// Every event with an id at or below this has been deleted by retention.
    pub pruned_through: i64,
    pub frames: Vec<Frame>,
}

/// Where the event log stood `ago` (zero: now): its newest id then, and its horizon.
pub async fn position(
    client: &Client,
    ago: Duration,
) -> Result<LogPosition, tokio_postgres::Error> {
    let row = client
        .query_one(
            include_str!("../../sql/event_log_position.sql"),
            &[&ago.as_secs_f64()],
        )
        .await?;
    Ok(LogPosition {
        last_id: row.get("last_id"),
        pruned_through: row.get("pruned_through"),
    })
}

/// Prepares [`EVENTS_AFTER`] on a connection, for repeated use by [`after`].
pub async fn prepare(client: &Client) -> Result<Statement, tokio_postgres::Error> {
    client.prepare(EVENTS_AFTER).await
}

/// Up to `limit` events with ids above `after`, oldest first, rendered as frames, and no more
/// once their data passes [`PAGE_BYTES`]. `statement` is [`EVENTS_AFTER`] prepared on `client`.
pub async fn after(
    client: &Client,
    statement: &Statement,
    after: i64,
    limit: i64,
) -> Result<Page, tokio_postgres::Error> {
    let max_bytes = PAGE_BYTES as i64;
    let rows = client
        .query(statement, &[&after, &limit, &max_bytes])
        .await?;
    let pruned_through = rows.first().map_or(0, |row| row.get("pruned_through"));
    let frames: Vec<Frame> = rows
        .iter()
        .filter_map(|row| {
            let id: Option<i64> = row.get("id");
            let target = Target::from_columns(
                row.get("recipient"),
                row.get("recipients"),
                row.get("client_id"),
                row.get("session_id"),
            );
            // The data as the database's text: jsonb's own type would make it a serde_json
            // value, which refuses what jsonb accepts (see [`crate::event::Event`]).
            let frame = Frame::render(id?, row.get("kind"), row.get("payload"), target);
            Some((frame.with_topic(row.get("topic"))).committed_at(row.get("committed_at")))
        })
        .collect();
    // The database counts the bytes of its own text form, a little longer than compact JSON.
    let bytes: usize = frames.iter().map(|f| f.data.len()).sum();
    Ok(Page {
        full: frames.len() as i64 == limit || bytes >= PAGE_BYTES / 2,
        pruned_through,
        frames,
    })
}

/// Deletes events older than `max_age` and all but the newest `max_events`; returns how many.
pub async fn prune(
    client: &Client,
    max_age: Duration,
    max_events: i64,
) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one(
            include_str!("../../sql/prune.sql"),
            &[&max_age.as_secs_f64(), &max_events],
        )
        .await?;
    Ok(row.get("deleted"))
}

/// What the catalog says of the event log and the notification queue, for `/metrics`: read from
/// the catalog only, so that it costs the same whatever the log holds (see `sql/metrics.sql`).
pub struct Figures {
    /// `pg_notification_queue_usage()`.
    pub queue_usage: f64,
    /// The planner's estimate of the rows; negative before the table's first vacuum or analyze.
    pub rows_estimate: f64,
    /// The planner's estimate of the table's size with its indexes, in bytes.
    pub bytes_estimate: i64,
}

/// Reads [`Figures`].
pub async fn figures(client: &Client) -> Result<Figures, tokio_postgres::Error> {
    let row = client
        .query_one(include_str!("../../sql/metrics.sql"), &[])
        .await?;
    Ok(Figures {
        queue_usage: row.get("queue_usage"),
        rows_estimate: row.get("rows_estimate"),
        bytes_estimate: row.get("bytes_estimate"),
    })
}

/// Who a published event is for; all `None` means everyone.
#[derive(Default)]
pub struct Recipients<'a> {
    /// A username.
    pub user: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
}

/// Publishes an event through `pgsse.publish`, committed at once, and returns its id (`None` only
/// if retention pruned it in between). The event is named with a key of its own and its id read
/// after the commit, so the event lock is never held longer than a commit.
pub async fn publish(
    client: &Client,
    kind: &str,
    data: &serde_json::Value,
    to: &Recipients<'_>,
) -> Result<Option<i64>, super::StoreError> {
    let row = client
        .query_one(
            include_str!("../../sql/publish.sql"),
            &[&kind, data, &to.user, &to.client_id, &to.session_id],
        )
        .await?;
    let key: String = row.get("key");
    let row = client
        .query_one("select pgsse.published($1) as id", &[&key])
        .await?;
    Ok(row.get("id"))
}
