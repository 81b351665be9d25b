//! Who is calling: the access token of a request, checked when authentication is on.
//!
//! Tokens are accepted from `Authorization: Bearer …`, the `pgsse_token` cookie, or the
//! `access_token` query parameter (a browser's `EventSource` cannot send headers). They are never
//! written to logs: nothing in the gateway logs request lines, headers or query strings.

use warp::{Filter, Rejection};

use super::error::ApiError;
use super::params::{self, Query};
use super::State;
use crate::auth::{self, Claims};

/// The cookie a browser may carry its token in.
pub const COOKIE: &str = "pgsse_token";

/// The request's token, if it carries one, from wherever it is.
pub fn token() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::cookie::optional::<String>(COOKIE))
        .and(warp::query::<Query>())
        .map(
            |header: Option<String>, cookie: Option<String>, query: Query| {
                choose_token(header.as_deref(), cookie.as_deref(), &query)
            },
        )
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
/// is missing or not valid.
pub fn identify(state: &State, token: Option<&str>) -> Result<Option<Claims>, ApiError> {
    let Some(verifier) = &state.auth else {
        return Ok(None);
    };
    let token = token.ok_or(auth::TokenError::Missing);
    match token.and_then(|t| verifier.verify(t, auth::now())) {
        Ok(claims) => Ok(Some(claims)),
        Err(err) => Err(ApiError::Unauthorized(err.to_string())),
    }
}

/// Lets the call through if authentication is off or the caller is an administrator.
pub fn require_admin(state: &State, token: Option<&str>) -> Result<(), ApiError> {
    match identify(state, token)? {
        Some(claims) if !claims.is_admin() => Err(ApiError::Forbidden(format!(
            "{:?} is not an administrator (the token needs role \"admin\")",
            claims.sub
        ))),
        _ => Ok(()),
    }
}
