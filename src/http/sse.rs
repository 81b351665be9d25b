//! `GET /sse/notifications/`: checks the request, then hands the connection to a
//! [`ClientStream`](super::stream::ClientStream).
//!
//! Everything that can be wrong with a request is answered here, with a JSON error, before the
//! first byte of the stream: a browser's `EventSource` gives up for good on a non-200 answer, so
//! once a stream has started it is never turned into an error.

use std::sync::Arc;
use std::time::Duration;

use warp::http::HeaderValue;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth;
use super::error::ApiError;
use super::filter::EventFilter;
use super::params::{self, Query};
use super::stream::{ClientStream, Opening};
use super::{with_state, State};
use crate::store::events;

/// GET /sse/notifications/ (with or without the trailing slash)
pub fn route(
    state: Arc<State>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("sse" / "notifications")
        .and(warp::get())
        .and(warp::header::optional::<String>("last-event-id"))
        .and(warp::query::<Query>())
        .and(auth::token())
        .and(with_state(state))
        .then(open)
}

async fn open(
    header: Option<String>,
    query: Query,
    token: Option<String>,
    state: Arc<State>,
) -> Response {
    match start(header, query, token, state).await {
        Ok(stream) => stream_response(stream),
        Err(err) => err.into_response(),
    }
}

/// Checks a stream request and opens its stream.
pub(super) async fn start(
    header: Option<String>,
    query: Query,
    token: Option<String>,
    state: Arc<State>,
) -> Result<ClientStream, ApiError> {
    let claims = auth::identify(&state, token.as_deref())?;
    // The header is what a browser sends when it reconnects; it wins over the query parameter.
    let last_event_id = match header {
        Some(value) => parse_event_id("Last-Event-ID", &value)?,
        None => match params::get(&query, "lastEventId") {
            Some(value) => parse_event_id("lastEventId", value)?,
            None => None,
        },
    };
    let filter = EventFilter::from_query(&query)?;
    let user = match &claims {
        Some(claims) if params::get(&query, "userId").is_some() => {
            return Err(ApiError::bad_request(
                "userId",
                format!("userId is not accepted with authentication on; this stream is {:?}'s, from its token", claims.sub),
            ))
        }
        Some(claims) => Some(claims.sub.clone()),
        None => stream_name(&query, "userId")?,
    };
    let last_event_id = match last_event_id {
        Some(id) if id > state.hub.position().last_id => Some(not_after_newest(&state, id).await),
        other => other,
    };
    let registration = state.registry.register(
        user,
        stream_name(&query, "clientId")?,
        stream_name(&query, "sessionId")?,
        filter.describe(),
    );
    let opening = Opening {
        last_event_id,
        filter,
        registration,
        expires_in: claims.map(|c| Duration::from_secs(c.exp.saturating_sub(crate::auth::now()))),
    };
    Ok(ClientStream::start(state, opening))
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
    let read = async {
        let client = state.pool.get().await.map_err(|e| e.to_string())?;
        events::position(&client).await.map_err(|e| e.to_string())
    };
    let read = tokio::time::timeout(NEWEST_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {NEWEST_TIMEOUT:?}")));
    match read {
        Ok(log) => id.min(log.last_id.max(log.pruned_through)),
        Err(err) if state.hub.is_started() => {
            log::warn!("cannot check resume id {id} against the event log ({err}); starting live");
            state.hub.position().last_id
        }
        // The database has not been reached yet; the stream waits for it and resumes from `id`.
        Err(_) => id,
    }
}

/// How long a stream request waits for the event log's newest id before it decides without it.
const NEWEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The headers of a stream's response, besides those of HTTP/1.1's framing.
pub(super) const RESPONSE_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    // Tells nginx (and proxies that copy it) not to buffer the stream.
    ("x-accel-buffering", "no"),
];

fn stream_response(stream: ClientStream) -> Response {
    let mut response = warp::reply::stream(stream.into_body()).into_response();
    let headers = response.headers_mut();
    for (name, value) in RESPONSE_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
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
    fn event_ids_are_plain_decimal_numbers() {
        assert_eq!(parse_event_id("x", "42").unwrap(), Some(42));
        assert_eq!(parse_event_id("x", "").unwrap(), None);
        assert_eq!(parse_event_id("x", " 7 ").unwrap(), Some(7));
        for bad in ["abc", "-1", "1.5", "+3", "123456789012345678901234567890"] {
            assert!(parse_event_id("x", bad).is_err(), "{bad}");
        }
    }
}
