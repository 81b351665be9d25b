//! `GET /sse/notifications/`: checks the request, then answers with warp's SSE reply of a
//! [`ClientStream`], with warp's keep-alive.
//!
//! Everything that can be wrong with a request is answered here, with a JSON error, before the
//! first byte of the stream: a browser's `EventSource` gives up for good on a non-200 answer, so
//! once a stream has started it is never turned into an error.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use tokio::time::Instant;
use warp::http::{HeaderMap, HeaderValue, Method};
use warp::reply::Response;
use warp::sse::Event;
use warp::{Filter, Reply};

use super::auth;
use super::error::{ApiError, ErrorBody};
use super::filter;
use super::params::{self, Query};
use super::{with_state, State};
use crate::auth::Claims;
use crate::db;
use crate::registry::{Claim, Full};
use crate::store::events;
use crate::stream::{ClientStream, EventFilter, Opening};

/// What a client refused at a cap is told to wait before trying again.
const RETRY_AFTER_SECS: u64 = 5;
/// The most ids back `?history=` may ask a new stream to start.
pub(crate) const MAX_HISTORY: i64 = 100;

/// Any request for the stream on a connection of the reserve (beyond `MAX_CONNECTIONS`), however
/// it is framed: `503` with `Retry-After`. On other connections this matches nothing.
pub fn refused_on_reserve(
    state: Arc<State>,
    reserve: bool,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("sse" / "notifications")
        .and(with_state(state))
        .and_then(move |state: Arc<State>| async move {
            if !reserve {
                return Err(warp::reject::not_found());
            }
            state.metrics().streams_refused.inc();
            let max = state.metrics().connections_max.get();
            log::debug!("stream request refused: {max} connections open (MAX_CONNECTIONS)");
            Ok(ApiError::Full {
                message: format!(
                    "the gateway is serving its maximum of {max} connections (MAX_CONNECTIONS); \
                     try again in {RETRY_AFTER_SECS} s"
                ),
                retry_after: RETRY_AFTER_SECS,
            }
            .into_response())
        })
}

/// GET (or HEAD) /sse/notifications/ (with or without the trailing slash)
pub fn route(
    state: Arc<State>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("sse" / "notifications")
        .and(super::read())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(warp::query::<Query>())
        .and(auth::token(&state))
        .and(with_state(state))
        .then(open)
}

/// The event stream.
///
/// Opens with an `event: connection` block, then sends every event after `Last-Event-ID` (or
/// `lastEventId`) and every new one, each with its decimal `id:`, its kind as `event:` and
/// compact JSON as `data:`, with comments as keep-alives. Every check is done before the stream
/// starts; once it has, it is never turned into an error.
#[utoipa::path(get, operation_id = "openStream", path = "/sse/notifications/", tag = "events",
    security((), ("bearer" = []), ("cookie" = []), ("query" = [])),
    params(
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0,
            description = "The id of the last event received: what a browser sends when it \
                reconnects. Wins over lastEventId."),
        ("lastEventId" = Option<i64>, Query, minimum = 0,
            description = "Resume after this event id."),
        ("events" = Option<Vec<String>>, Query, style = Form, explode = false, max_items = 64,
            description = "Comma-separated event kinds to receive, at most 64: newBoard, \
                newPath, or custom kinds of 1 to 64 letters, digits, '.', '_' or '-'."),
        ("board_id" = Option<i64>, Query, minimum = 1,
            description = "Only events of this board."),
        ("userId" = Option<String>, Query,
            description = "Whose targeted events to receive; refused with authentication on, \
                where the token says."),
        ("clientId" = Option<String>, Query, description = "This stream's client."),
        ("sessionId" = Option<String>, Query, description = "This stream's session."),
        ("access_token" = Option<String>, Query,
            description = "The token, for an EventSource, which cannot send headers."),
        ("history" = Option<i64>, Query, minimum = 1, maximum = 100,
            description = "A stream opened without Last-Event-ID or lastEventId starts this \
                many ids before the newest event, so it opens with recent history; ignored \
                when resuming."),
        ("envelope" = Option<u8>, Query, minimum = 0, maximum = 1,
            description = "1: every event goes out unnamed (an EventSource's `message`), its \
                data {\"kind\": name, \"data\": the usual data}, so a page gets every kind."),
    ),
    responses(
        (status = 200, description = "The event stream.", content_type = "text/event-stream",
            body = String),
        (status = 400, description = "A bad parameter, another spelling of one, or two \
            Last-Event-ID or Authorization headers.", body = ErrorBody),
        (status = 401, description = "Authentication is on and the token is missing or not \
            valid.", body = ErrorBody),
        (status = 503, description = "The gateway serves MAX_STREAMS streams or \
            MAX_CONNECTIONS connections already; Retry-After says when to try again.",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
async fn open(
    method: Method,
    headers: HeaderMap,
    query: Query,
    token: Result<Option<String>, ApiError>,
    state: Arc<State>,
) -> Response {
    let keepalive = state.streams.keepalive;
    let claims = match token {
        Ok(token) => auth::identify(&state, token.as_deref()).await,
        Err(err) => Err(err),
    };
    let request = match check(&headers, &query, claims) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    // A probe's HEAD is answered as the GET would be, refused where the GET would be, without
    // opening a stream.
    if method == Method::HEAD {
        return match state.registry().room() {
            Ok(()) => sse_response(futures_util::stream::empty(), keepalive),
            Err(full) => refused(&state, full).into_response(),
        };
    }
    match start(request, &state).await {
        Ok(stream) => sse_response(stream.into_events(), keepalive),
        Err(err) => err.into_response(),
    }
}

/// A stream request that passed every check.
struct StreamRequest {
    last_event_id: Option<i64>,
    /// `?history=`: ids back a new stream starts; 0 for none.
    history: i64,
    /// `?envelope=1`: every event unnamed, its name in its data.
    envelope: bool,
    filter: EventFilter,
    claim: Claim,
    expires_at: Option<Instant>,
}

/// Checks everything about a stream request, once its token is checked, that needs no I/O.
fn check(
    headers: &HeaderMap,
    query: &Query,
    claims: Result<Option<Claims>, ApiError>,
) -> Result<StreamRequest, ApiError> {
    let claims = claims?;
    check_parameter_names(query)?;
    // The header is what a browser sends when it reconnects; it wins over the query parameter.
    let last_event_id = match auth::single_header(headers, "Last-Event-ID")? {
        Some(value) => parse_event_id("Last-Event-ID", value)?,
        None => match params::get(query, "lastEventId") {
            Some(value) => parse_event_id("lastEventId", value)?,
            None => None,
        },
    };
    let filter = filter::from_query(query)?;
    let history = params::int(query, "history", 1, MAX_HISTORY)?.unwrap_or(0);
    let envelope = params::flag(query, "envelope")?;
    let user = match &claims {
        Some(claims) if params::get(query, "userId").is_some() => {
            return Err(ApiError::bad_request(
                "userId",
                format!("userId is not accepted with authentication on; this stream is {:?}'s, from its token", claims.sub),
            ))
        }
        Some(claims) => Some(claims.sub.clone()),
        None => stream_name(query, "userId")?,
    };
    let claim = Claim {
        user,
        client_id: stream_name(query, "clientId")?,
        session_id: stream_name(query, "sessionId")?,
        authenticated: claims.is_some(),
    };
    // A token valid for longer than an Instant can reach (exp = u64::MAX, say) never ends its
    // stream, rather than overflowing.
    let expires_at = claims.and_then(|c| {
        let left = Duration::from_secs(c.exp.saturating_sub(crate::auth::now()));
        Instant::now().checked_add(left)
    });
    Ok(StreamRequest {
        last_event_id,
        history,
        envelope,
        filter,
        claim,
        expires_at,
    })
}

/// Opens the stream of a checked request, unless `MAX_STREAMS` are open.
async fn start(request: StreamRequest, state: &State) -> Result<ClientStream, ApiError> {
    let last_event_id = match request.last_event_id {
        Some(id) if id > state.hub().position().last_id => Some(not_after_newest(state, id).await),
        other => other,
    };
    let registration = state
        .registry()
        .register(request.claim, request.filter.describe())
        .map_err(|full| refused(state, full))?;
    let opening = Opening {
        last_event_id,
        history: request.history,
        envelope: request.envelope,
        filter: request.filter,
        registration,
        expires_at: request.expires_at,
    };
    Ok(ClientStream::start(state.streams.clone(), opening))
}

/// A stream request refused because `MAX_STREAMS` are open.
fn refused(state: &State, full: Full) -> ApiError {
    state.metrics().streams_refused.inc();
    ApiError::Full {
        message: format!(
            "the gateway is serving its maximum of {} streams (MAX_STREAMS); try again in \
             {RETRY_AFTER_SECS} s",
            full.max_streams
        ),
        retry_after: RETRY_AFTER_SECS,
    }
}

/// The stream's query parameters. Unknown ones are ignored (cache-busters such as `_=17…`),
/// but another spelling of one of these (`boardId`, `lastEventID`, `event`, `access-token`)
/// would silently do nothing, so it is refused with the right name.
const PARAMETERS: &[&str] = &[
    "lastEventId",
    "history",
    "envelope",
    "events",
    "board_id",
    "clientId",
    "sessionId",
    "access_token",
    "userId",
];

fn check_parameter_names(query: &Query) -> Result<(), ApiError> {
    for (name, _) in query {
        if PARAMETERS.contains(&name.as_str()) {
            continue;
        }
        if let Some(right) = PARAMETERS.iter().find(|p| same_name(p, name)) {
            return Err(ApiError::bad_request(
                right,
                format!("there is no stream parameter {name:?}; did you mean {right}?"),
            ));
        }
    }
    Ok(())
}

/// Whether two parameter names differ only in case, separators or a plural `s`.
fn same_name(a: &str, b: &str) -> bool {
    let key = |name: &str| {
        let key: String = name
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        key.strip_suffix('s').map(str::to_owned).unwrap_or(key)
    };
    key(a) == key(b)
}

/// An optional name a stream declares for itself (`userId` without authentication, `clientId`,
/// `sessionId`): 1 to 128 letters, digits, `.`, `_`, `-`, `:` or `@`.
fn stream_name(query: &Query, name: &'static str) -> Result<Option<String>, ApiError> {
    let Some(value) = params::get(query, name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let allowed = |c: char| c.is_alphanumeric() || "._-:@".contains(c);
    if value.chars().count() <= 128 && value.chars().all(allowed) {
        Ok(Some(value.to_owned()))
    } else {
        Err(ApiError::bad_request(
            name,
            format!(
                "{name} must be 1 to 128 letters, digits, '.', '_', '-', ':' or '@', got {value:?}"
            ),
        ))
    }
}

/// An id beyond the newest event (from another database, say) starts the client live rather
/// than making it wait until ids pass it.
async fn not_after_newest(state: &State, id: i64) -> i64 {
    let read = db::query_within(state.pool(), NEWEST_TIMEOUT, async |client| {
        events::position(client, Duration::ZERO).await
    })
    .await;
    match read {
        Ok(log) => id.min(log.last_id.max(log.pruned_through)),
        Err(err) if state.hub().is_started() => {
            log::warn!("cannot check resume id {id} against the event log ({err}); starting live");
            state.hub().position().last_id
        }
        // The database has not been reached yet; the stream waits for it and resumes from `id`.
        Err(_) => id,
    }
}

/// How long a stream request waits for the event log's newest id before it decides without it.
const NEWEST_TIMEOUT: Duration = Duration::from_secs(2);

/// warp's SSE reply (`text/event-stream`, `no-cache`) of `events`, with warp's keep-alive comment
/// after `keepalive` of quiet.
fn sse_response<S>(events: S, keepalive: Duration) -> Response
where
    S: Stream<Item = Result<Event, Infallible>> + Send + Sync + 'static,
{
    let events = warp::sse::keep_alive()
        .interval(keepalive)
        .text(" keep-alive")
        .stream(events);
    let mut response = warp::sse::reply(events).into_response();
    // Tells nginx (and proxies that copy it) not to buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// An event id as a client sends it back: decimal digits that fit an id. Empty means none.
fn parse_event_id(name: &'static str, value: &str) -> Result<Option<i64>, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(id) = value.parse::<i64>() {
            return Ok(Some(id));
        }
    }
    Err(ApiError::bad_request(
        name,
        format!(
            "{name} must be an event id (a whole number from 0 to {}), got {value:?}",
            i64::MAX
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_spellings_of_a_parameter_are_told_apart_from_unknown_ones() {
        for (given, right) in [
            ("boardId", "board_id"),
            ("event", "events"),
            ("lastEventID", "lastEventId"),
            ("access-token", "access_token"),
            ("ClientID", "clientId"),
        ] {
            let query = vec![(given.to_owned(), "1".to_owned())];
            let err = check_parameter_names(&query).unwrap_err();
            assert!(
                err.to_string().contains(&format!("did you mean {right}?")),
                "{err}"
            );
        }
        let fine: Query = ["_", "lastEventId", "v", "board_id"]
            .iter()
            .map(|name| (name.to_string(), "1".to_owned()))
            .collect();
        assert!(check_parameter_names(&fine).is_ok());
    }

    #[test]
    fn event_ids_are_plain_decimal_numbers() {
        assert_eq!(parse_event_id("x", "42").unwrap(), Some(42));
        assert_eq!(parse_event_id("x", "").unwrap(), None);
        assert_eq!(parse_event_id("x", " 7 ").unwrap(), Some(7));
        for bad in ["abc", "-1", "1.5", "+3", "123456789012345678901234567890"] {
            assert!(parse_event_id("x", bad).is_err(), "{bad}");
        }
    }
}
