//! Publishing and inspecting streams over HTTP: `/api/sse/send`, `/api/sse/clients`, and the
//! demo-only `/api/demo/token`.
//!
//! Sending goes through the same SQL function as any SQL client (`pgsse.publish`), so the event
//! is recorded, ordered and delivered like every other; nothing here writes to a stream directly.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::auth::{self, COOKIE};
use super::error::{AdminErrors, ApiError, BodyErrors, ErrorBody, Unavailable};
use super::{body, validate, with_state, State};
use crate::auth::Claims;
use crate::registry::rfc3339;
use crate::store::{events, users};

/// How long a demo token is valid.
const DEMO_TOKEN_SECS: u64 = 3600;

pub fn routes(
    state: Arc<State>,
    body_timeout: Duration,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let send = warp::path!("api" / "sse" / "send")
        .and(warp::post())
        .and(auth::token(&state))
        .and(body::json(body_timeout))
        .and(with_state(state.clone()))
        .then(send);
    let clients = warp::path!("api" / "sse" / "clients")
        .and(super::read())
        .and(auth::token(&state))
        .and(with_state(state.clone()))
        .then(clients);
    let sign_out = warp::path!("api" / "demo" / "token")
        .and(warp::delete())
        .and(auth::token(&state))
        .and(with_state(state.clone()))
        .then(sign_out);
    let demo = warp::path!("api" / "demo" / "token")
        .and(warp::post())
        .and(body::json(body_timeout))
        .and(with_state(state))
        .then(demo_token);
    send.or(clients).or(demo).or(sign_out)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SendEvent)]
struct Send {
    /// The event's name (its `event:` field).
    #[serde(rename = "type")]
    kind: String,
    /// The event's data: a JSON object, `{}` unless given.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    data: Value,
    /// Who receives the event; everyone unless given.
    #[serde(default)]
    target: Target,
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Target {
    /// A username (any string: the user as their token names them, whether or not the demo's
    /// app_user has them), or the id of one of the demo's users.
    user_id: Option<UserRef>,
    /// Only that user's streams that declared this clientId.
    client_id: Option<String>,
    /// Only that user's streams that declared this sessionId.
    session_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
enum UserRef {
    Id(i64),
    Name(String),
}

fn empty_object() -> Value {
    json!({})
}

/// The answer to a send: the id of the recorded event.
#[derive(Serialize, ToSchema)]
struct Sent {
    /// `null` only if retention pruned the event at once.
    id: Option<i64>,
}

/// POST /api/sse/send `{"type", "data"?, "target"?: {"userId"?, "clientId"?, "sessionId"?}}`:
/// 202 with the event's id.
#[utoipa::path(post, operation_id = "sendEvent", path = "/api/sse/send", tag = "events",
    request_body = Send,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 202, description = "The event is recorded and on its way.", body = Sent),
        (status = 422, description = "target.userId is an id of no user.", body = ErrorBody),
        BodyErrors, AdminErrors, Unavailable,
    ))]
async fn send(
    token: Result<Option<String>, ApiError>,
    body: Result<Send, ApiError>,
    state: Arc<State>,
) -> Result<impl Reply, ApiError> {
    auth::require_admin(&state, token?.as_deref()).await?;
    let body = body?;
    let by_name_only = body.target.user_id.is_none()
        && (body.target.client_id.is_some() || body.target.session_id.is_some());
    if state.auth.is_some() && by_name_only {
        // Any user may declare any clientId or sessionId; with authentication on they are
        // each user's own, so such a target must say whose.
        return Err(ApiError::bad_request(
            "target.userId",
            "with authentication on, a target.clientId or target.sessionId needs target.userId: \
             streams name their clients and sessions for their own user",
        ));
    }
    let client = state.database().await?;
    let recipient = match body.target.user_id {
        None => None,
        Some(UserRef::Name(name)) => Some(name),
        Some(UserRef::Id(id)) => Some(
            users::by_id(&client, id)
                .await?
                .ok_or_else(|| {
                    ApiError::unprocessable("target.userId", format!("there is no user {id}"))
                })?
                .username,
        ),
    };
    let target = events::Recipients {
        user: recipient.as_deref(),
        client_id: body.target.client_id.as_deref(),
        session_id: body.target.session_id.as_deref(),
    };
    let id = events::publish(&client, &body.kind, &body.data, &target).await?;
    Ok(warp::reply::with_status(
        super::json(&Sent { id }),
        StatusCode::ACCEPTED,
    ))
}

/// The streams connected to this gateway.
#[derive(Serialize, ToSchema)]
struct Clients {
    clients: Vec<Client>,
}

/// One connected stream.
#[derive(Serialize, ToSchema)]
struct Client {
    client_id: String,
    user: Option<String>,
    session_id: Option<String>,
    /// When the stream opened, RFC 3339.
    #[schema(format = DateTime)]
    connected_since: String,
    /// The id of the last event sent on it.
    last_event_id: i64,
    /// Its `events`, `board_id` and `topic` filters, each `null` when not set.
    #[schema(value_type = Object)]
    filters: Value,
}

/// GET /api/sse/clients: the streams connected to this gateway.
#[utoipa::path(get, operation_id = "listClients", path = "/api/sse/clients", tag = "events",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The streams connected to this gateway.", body = Clients),
        AdminErrors,
    ))]
async fn clients(
    token: Result<Option<String>, ApiError>,
    state: Arc<State>,
) -> Result<impl Reply, ApiError> {
    auth::require_admin(&state, token?.as_deref()).await?;
    let clients = state
        .registry()
        .list()
        .iter()
        .map(|entry| Client {
            client_id: entry.viewer.client_id.clone(),
            user: entry.viewer.user.clone(),
            session_id: entry.viewer.session_id.clone(),
            connected_since: rfc3339(entry.connected_at),
            last_event_id: entry.last_event_id.load(Relaxed),
            filters: match &entry.filters {
                Value::Null => json!({ "events": null, "board_id": null }),
                filters => filters.clone(),
            },
        })
        .collect();
    Ok(super::json(&Clients { clients }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DemoLogin {
    #[schema(min_length = 1, max_length = 64)]
    username: String,
    /// Whether the token carries role "admin".
    #[serde(default)]
    admin: bool,
}

/// A demo sign-in's token.
#[derive(Serialize, ToSchema)]
struct DemoToken {
    token: String,
    user: String,
    /// When the token expires, in seconds since the Unix epoch.
    expires_at: u64,
}

/// POST /api/demo/token `{"username", "admin"?}`: a token valid for an hour, also set as an
/// HttpOnly cookie. Only with `DEMO_TOKENS=1`: anyone can sign in as anyone.
#[utoipa::path(post, operation_id = "signInForDemo", path = "/api/demo/token", tag = "auth",
    request_body = DemoLogin,
    responses(
        (status = 200, description = "A token valid for an hour.", body = DemoToken,
            headers(("Set-Cookie" = String, description = "The token as the pgsse_token cookie."))),
        (status = 404, description = "Demo tokens are off (DEMO_TOKENS).", body = ErrorBody),
        BodyErrors,
    ))]
async fn demo_token(
    body: Result<DemoLogin, ApiError>,
    state: Arc<State>,
) -> Result<impl Reply, ApiError> {
    let (Some(verifier), true) = (&state.auth, state.demo_tokens) else {
        return Err(ApiError::NotFound("not found".into()));
    };

    let body = body?;
    validate::text("username", &body.username, super::users::USERNAME_MAX)?;
    let claims = Claims {
        sub: body.username,
        role: body.admin.then(|| "admin".to_owned()),
        exp: crate::auth::now() + DEMO_TOKEN_SECS,
        nbf: None,
    };
    // DEMO_TOKENS needs AUTH_JWT_SECRET (the configuration checks it), so this always signs.
    let Some(token) = verifier.try_sign(&claims) else {
        return Err(ApiError::NotFound("not found".into()));
    };
    let cookie = cookie(&state, &token, DEMO_TOKEN_SECS);
    let body = DemoToken {
        token,
        user: claims.sub,
        expires_at: claims.exp,
    };
    Ok(warp::reply::with_header(
        super::json(&body),
        "set-cookie",
        cookie,
    ))
}

/// DELETE /api/demo/token: 204, and the token cookie cleared (a page cannot clear an HttpOnly
/// cookie itself). Only from the gateway's own pages when the cookie comes with it.
#[utoipa::path(delete, operation_id = "signOut", path = "/api/demo/token", tag = "auth",
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Signed out.",
            headers(("Set-Cookie" = String, description = "The pgsse_token cookie, cleared."))),
        (status = 400, description = "Two Authorization headers.", body = ErrorBody),
        (status = 403, description = "Signed in by the cookie, from another site.",
            body = ErrorBody),
    ))]
async fn sign_out(
    token: Result<Option<String>, ApiError>,
    state: Arc<State>,
) -> Result<impl Reply, ApiError> {
    token?;
    Ok(warp::reply::with_header(
        StatusCode::NO_CONTENT,
        "set-cookie",
        cookie(&state, "", 0),
    ))
}

/// The token cookie's `Set-Cookie` value: out of the pages' reach (`HttpOnly`), never sent by
/// another site's requests (`SameSite=Strict`), and, when the gateway serves HTTPS, never sent
/// over plain HTTP (`Secure`), where anyone on the way could read it.
fn cookie(state: &State, token: &str, max_age: u64) -> String {
    let secure = if state.secure_cookie { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}; Max-Age={max_age}")
}
