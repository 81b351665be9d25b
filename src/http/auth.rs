//! Who is calling: the access token of a request, checked when authentication is on.
//!
//! Tokens are accepted from `Authorization: Bearer …`, the `pgsse_token` cookie, or the
//! `access_token` query parameter (a browser's `EventSource` cannot send headers). They are never
//! written to logs: nothing in the gateway logs request lines, headers or query strings.
//!
//! A cookie is sent by the browser whoever made the page, so a `POST` or `DELETE` authenticated
//! by the cookie must come from one of the gateway's own pages: its `Origin` must be the
//! gateway's. (JSON bodies must also say `Content-Type: application/json`, which no plain HTML
//! form can send to another site.)

use warp::http::{HeaderMap, Method};
use warp::{Filter, Rejection};

use super::cors;
use super::error::ApiError;
use super::params::{self, Query};
use super::State;
use crate::auth::{self, Claims};
use crate::config::CorsOrigins;

/// The cookie a browser may carry its token in.
pub const COOKIE: &str = "pgsse_token";

/// The request's token, if it carries one, from wherever it is; an error for a request with two
/// `Authorization` headers, or one whose cookie comes on a `POST` or `DELETE` from another site.
pub fn token(
    state: &State,
) -> impl Filter<Extract = (Result<Option<String>, ApiError>,), Error = Rejection> + Clone {
    token_and_query(state).map(|token, _query: Query| token)
}

/// [`token`], and the query string it may have come from, for a route that reads its query too:
/// the query is parsed once.
pub fn token_and_query(
    state: &State,
) -> impl Filter<Extract = (Result<Option<String>, ApiError>, Query), Error = Rejection> + Clone {
    let cors = state.cors.clone();
    warp::method()
        .and(warp::header::headers_cloned())
        .and(warp::host::optional())
        .and(warp::query::<Query>())
        .map(
            move |method: Method, headers: HeaderMap, host: Option<_>, query: Query| {
                let authority: Option<warp::host::Authority> = host;
                let host = authority.as_ref().map(|a| a.as_str());
                let token = token_of(&method, &headers, host, &query, &cors);
                (token, query)
            },
        )
        .untuple_one()
}

/// See [`token`].
fn token_of(
    method: &Method,
    headers: &HeaderMap,
    host: Option<&str>,
    query: &Query,
    cors: &CorsOrigins,
) -> Result<Option<String>, ApiError> {
    let authorization = single_header(headers, "Authorization")?;
    let cookie = cookie(headers, COOKIE);
    let token = choose_token(authorization, cookie.as_deref(), query);
    // The cookie is the credential only when no header is given.
    let by_cookie = authorization.is_none() && cookie.is_some();
    if by_cookie && matches!(*method, Method::POST | Method::DELETE) {
        trusted_origin(headers, host, cors)?;
    }
    Ok(token)
}

/// The value of a header that may appear once: `None` when absent, a `400` naming it when it
/// appears twice (proxies and servers disagree on which of two to take) or is not text.
pub fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            name,
            format!("the request has more than one {name} header"),
        ));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| ApiError::bad_request(name, format!("the {name} header is not plain text")))
}

/// A cookie's value, from any of the request's `Cookie` headers (HTTP/2 sends one per cookie).
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
}

/// Refuses, with a `403`, a request whose `Origin` is neither the gateway's own address (the
/// `Host` it was asked for) nor one that `CORS_ORIGINS` lets send cookies.
fn trusted_origin(
    headers: &HeaderMap,
    host: Option<&str>,
    cors: &CorsOrigins,
) -> Result<(), ApiError> {
    let origin = headers.get("origin").and_then(|v| v.to_str().ok());
    match origin {
        Some(o) if cors::same_origin(o, host) || cors.allows_credentials(o) => Ok(()),
        _ => Err(ApiError::Forbidden(format!(
            "a POST or DELETE signed in by the {COOKIE} cookie must come from the gateway's own \
             pages or an origin in CORS_ORIGINS (Origin {}); send the token in an Authorization \
             header instead",
            origin.unwrap_or("missing")
        ))),
    }
}

/// The token among the `Authorization` header's value, the cookie's value and the query: the
/// header wins, then the cookie, then `access_token`.
pub fn choose_token(
    authorization: Option<&str>,
    cookie: Option<&str>,
    query: &Query,
) -> Option<String> {
    let bearer = authorization.map(|h| match h.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token,
        // Not a bearer token: kept as is, so that it fails as malformed.
        _ => h,
    });
    bearer
        .or(cookie)
        .or_else(|| params::get(query, "access_token"))
        .filter(|t| !t.trim().is_empty())
        .map(str::to_owned)
}

/// The caller's claims: `Ok(None)` when authentication is off, a 401 when it is on and the token
/// is missing or not valid, a 503 while the identity provider's keys are not loaded yet.
pub async fn identify(state: &State, token: Option<&str>) -> Result<Option<Claims>, ApiError> {
    let Some(verifier) = &state.auth else {
        return Ok(None);
    };
    let Some(token) = token else {
        return Err(ApiError::Unauthorized(
            auth::TokenError::Missing.to_string(),
        ));
    };
    match verifier.verify(token).await {
        Ok(claims) => Ok(Some(claims)),
        Err(err @ auth::TokenError::KeysUnavailable(_)) => Err(ApiError::Full {
            message: err.to_string(),
            retry_after: KEYS_RETRY_AFTER_SECS,
        }),
        Err(err) => Err(ApiError::Unauthorized(err.to_string())),
    }
}

/// What a client refused while the identity provider's keys are not loaded is told to wait.
const KEYS_RETRY_AFTER_SECS: u64 = 5;

/// Lets the call through if authentication is off or the caller is an administrator.
pub async fn require_admin(state: &State, token: Option<&str>) -> Result<(), ApiError> {
    match identify(state, token).await? {
        Some(claims) if !claims.is_admin() => Err(ApiError::Forbidden(format!(
            "{:?} is not an administrator (the token needs role \"admin\")",
            claims.sub
        ))),
        _ => Ok(()),
    }
}
