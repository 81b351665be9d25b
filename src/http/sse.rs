//! `GET /sse/notifications/`: turns the request into a [`stream::Request`] (its query read as a
//! [`StreamQuery`]), has [`stream::open`] open it, and answers with warp's SSE reply of the
//! stream, with warp's keep-alive; or turns what was wrong into a JSON error.
//!
//! Everything that can be wrong with a request is answered here, before the first byte of the
//! stream: a browser's `EventSource` gives up for good on a non-200 answer, so once a stream has
//! started it is never turned into an error.

mod query;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use tokio::time::Instant;
use warp::http::{HeaderMap, HeaderValue, Method};
use warp::reply::Response;
use warp::sse::Event;
use warp::{Filter, Reply};

use self::query::StreamQuery;
// For the test that the API's description gives the bounds enforced.
#[cfg(test)]
pub(crate) use self::query::MAX_HISTORY;
use super::auth;
use super::error::{ApiError, ErrorBody};
use super::params::Query;
use super::{with_state, State};
use crate::auth::Claims;
use crate::stream::{self, Refused};

/// What a client refused at a cap is told to wait before trying again.
const RETRY_AFTER_SECS: u64 = 5;

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
        .and(auth::token_and_query(&state))
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
        StreamQuery,
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
    token: Result<Option<String>, ApiError>,
    query: Query,
    state: Arc<State>,
) -> Response {
    let keepalive = state.streams.keepalive;
    let claims = match token {
        Ok(token) => auth::identify(&state, token.as_deref()).await,
        Err(err) => Err(err),
    };
    let request = match request(&headers, &query, claims) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    // A probe's HEAD is answered as the GET would be, refused where the GET would be, without
    // opening a stream.
    if method == Method::HEAD {
        return match stream::room(&state.streams) {
            Ok(()) => sse_response(futures_util::stream::empty(), keepalive),
            Err(refused) => refusal(refused).into_response(),
        };
    }
    match stream::open(&state.streams, request).await {
        Ok(stream) => sse_response(stream.into_events(), keepalive),
        Err(refused) => refusal(refused).into_response(),
    }
}

/// The stream request, once its token is checked: every check that needs no I/O, in the order
/// a client is told of the first it fails.
fn request(
    headers: &HeaderMap,
    query: &Query,
    claims: Result<Option<Claims>, ApiError>,
) -> Result<stream::Request, ApiError> {
    let claims = claims?;
    let query = StreamQuery::parse(query)?;
    Ok(stream::Request {
        last_event_id: query.last_event_id(headers)?,
        filter: query.filter()?,
        history: query.history()?,
        envelope: query.envelope()?,
        claim: query.claim(claims.as_ref())?,
        expires_at: expires_at(claims.as_ref()),
    })
}

/// When a stream must end because its token expires. A token valid for longer than an Instant
/// can reach (exp = u64::MAX, say) never ends its stream, rather than overflowing.
fn expires_at(claims: Option<&Claims>) -> Option<Instant> {
    let left = Duration::from_secs(claims?.exp.saturating_sub(crate::auth::now()));
    Instant::now().checked_add(left)
}

/// A stream refused by [`stream::open`], as the client is told.
fn refusal(refused: Refused) -> ApiError {
    ApiError::Full {
        message: format!("{refused}; try again in {RETRY_AFTER_SECS} s"),
        retry_after: RETRY_AFTER_SECS,
    }
}

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
