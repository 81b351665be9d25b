//! `GET /api/events`: every kind of event the gateway can send, with the JSON Schema of its
//! data, so that a client can be typed from it: the stream's own `connection` and `resync`, the
//! built-in `newBoard` and `newPath`, and each watched table's kind (`pgsse.watches`), its
//! schema derived from the chosen columns' types ([`crate::store::watches::schema`]).
//!
//! Like the other reads of the API it needs no token: it says what the stream sends, as the
//! API's description does. So it gives no watched table's filter, recipient or topic
//! expression (they are the application's logic, and may name its rules or its users), only
//! whether the events are for particular users and whether they have a topic.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use warp::{Filter, Reply};

use super::error::{ApiError, Unavailable};
use super::{position, with_state, State};
use crate::store::position::read;
use crate::store::watches;
use crate::store::watches::schema::{self, DIALECT};

pub fn route(
    state: Arc<State>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "events")
        .and(super::read())
        .and(with_state(state))
        .then(list)
}

/// The kinds of events the gateway can send.
#[derive(Serialize, ToSchema)]
#[schema(as = EventKinds)]
struct Kinds {
    /// The stream's own kinds, the built-in ones, then the watched tables' by name. Any other
    /// kind is published (`pgsse.publish`, `POST /api/sse/send`), with any JSON object as data.
    kinds: Vec<Kind>,
}

/// A kind of event the gateway can send.
#[derive(Serialize, ToSchema)]
#[schema(as = EventKind)]
struct Kind {
    /// The event's name: its `event:` field, what `?events=` names.
    kind: String,
    source: Source,
    /// The table whose rows make it (qualified when not on the database's search path); `null`
    /// for the stream's own kinds.
    table: Option<String>,
    /// The operations on the table that make it, some of `delete`, `insert`, `update`; empty
    /// for the stream's own kinds.
    operations: Vec<String>,
    /// Whether its events have a topic, which `?topic=` keeps (the built-in kinds' topic is
    /// their board's id).
    topic: bool,
    /// Whether its events are each for particular users only (a recipient expression), not
    /// for every stream.
    targeted: bool,
    /// The JSON Schema (draft 2020-12) of its data.
    #[schema(value_type = Object)]
    schema: Value,
}

/// What sends a kind of event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = EventSource)]
enum Source {
    /// The stream itself, to every stream whatever its `?events=`: `connection`, `resync`.
    Stream,
    /// The built-in tables `board` and `path`.
    Builtin,
    /// A table watched with `pgsse.watch`.
    Watch,
}

/// GET /api/events
#[utoipa::path(get, operation_id = "listEventKinds", path = "/api/events", tag = "events",
    responses(
        (status = 200, description = "Every kind of event the gateway can send, with the JSON \
            Schema of its data. Events after the position may be of kinds watched since: a \
            client that meets an unknown kind may ask again.",
            body = Kinds, headers(("Pgsse-Position" = i64))),
        Unavailable,
    ))]
async fn list(state: Arc<State>) -> Result<impl Reply, ApiError> {
    let mut client = state.database().await?;
    let ((watched, types), at) = read(&mut client, async |c| watches::all(c).await).await?;
    let mut kinds = own_kinds();
    kinds.extend(watched.iter().map(|watch| Kind {
        kind: watch.kind.clone(),
        source: Source::Watch,
        table: Some(watch.table.clone()),
        operations: watch.operations.clone(),
        topic: watch.topic,
        targeted: watch.targeted,
        schema: schema::data(watch, &types),
    }));
    Ok(position::with(super::json(&Kinds { kinds }), at))
}

/// The kinds whose data the gateway fixes: the stream's own (`stream::render` writes them) and
/// the built-in tables' (migration 2's `pgsse.capture`).
fn own_kinds() -> Vec<Kind> {
    let stream = |kind: &str, schema| Kind {
        kind: kind.into(),
        source: Source::Stream,
        table: None,
        operations: Vec::new(),
        topic: false,
        targeted: false,
        schema,
    };
    let builtin = |kind: &str, table: &str, schema| Kind {
        kind: kind.into(),
        source: Source::Builtin,
        table: Some(table.into()),
        operations: vec!["insert".into()],
        topic: true,
        targeted: false,
        schema,
    };
    vec![
        stream("connection", connection()),
        stream("resync", resync()),
        builtin("newBoard", "board", new_board()),
        builtin("newPath", "path", new_path()),
    ]
}

/// An object with exactly these properties.
fn object(description: &str, properties: Value) -> Value {
    let required: Vec<&String> = properties
        .as_object()
        .map_or(Vec::new(), |p| p.keys().collect());
    json!({
        "$schema": DIALECT,
        "description": description,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn connection() -> Value {
    object(
        "The stream's first event: who it is for, and where the log stood as it opened.",
        json!({
            "client_id": { "type": "string" },
            "user": { "type": ["string", "null"] },
            "session_id": { "type": ["string", "null"] },
            "authenticated": { "type": "boolean" },
            "newest_id": { "type": ["integer", "null"] },
            "server_time": { "type": "string", "format": "date-time" },
        }),
    )
}

fn resync() -> Value {
    object(
        "Events the client missed are no longer retained: refetch its state.",
        json!({
            "reason": { "type": "string" },
            "message": { "type": "string" },
            "last_event_id": { "type": "integer" },
            "resumes_after": { "type": "integer" },
        }),
    )
}

fn new_board() -> Value {
    object(
        "A board was created.",
        json!({
            "board_id": { "type": "integer" },
            "board_name": { "type": "string" },
            "creator_username": { "type": "string" },
        }),
    )
}

fn new_path() -> Value {
    object(
        "A path was drawn on a board.",
        json!({
            "path_id": { "type": "integer" },
            "board_id": { "type": "integer" },
            "board_name": { "type": "string" },
            "user_username": { "type": "string" },
        }),
    )
}
