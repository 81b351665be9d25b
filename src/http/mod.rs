//! The HTTP routes: a routing table, the state handlers share, and the translation of warp's own
//! rejections (unknown route, wrong method, bad query) into the API's JSON errors. Connections
//! are accepted and served by [`crate::server`]; event streams are made by [`crate::stream`].

mod auth;
mod boards;
mod body;
mod cors;
pub mod error;
mod events;
mod filter;
mod health;
pub mod openapi;
mod params;
mod paths;
mod position;
mod publish;
mod sse;
mod users;
mod validate;
mod web;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use warp::http::header::LOCATION;
use warp::http::{Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use self::error::ApiError;
use crate::auth::Verifier;
use crate::config::CorsOrigins;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::stream;

/// What every handler can reach.
pub struct State {
    /// What every event stream shares, and with it the handles every handler reaches (the hub,
    /// the pool, the metrics, the registry): one set, held once.
    pub streams: Arc<stream::Settings>,
    /// Checks access tokens; `None` when authentication is off.
    pub auth: Option<Verifier>,
    /// Whether `POST /api/demo/token` hands out tokens (demos only).
    pub demo_tokens: bool,
    /// Whether the token cookie is `Secure` (sent by browsers over HTTPS only): when the gateway
    /// serves HTTPS itself.
    pub secure_cookie: bool,
    /// How long a client may take to send a request body.
    pub body_timeout: Duration,
    /// Which other origins' pages may use the gateway.
    pub cors: CorsOrigins,
    /// Set once the migrations have run: before, the API's tables may not exist yet.
    pub migrated: AtomicBool,
}

impl State {
    pub fn hub(&self) -> &Arc<Hub> {
        &self.streams.hub
    }

    pub fn pool(&self) -> &Pool {
        &self.streams.pool
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.streams.metrics
    }

    /// The connected streams.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.streams.registry
    }

    /// A pooled connection for the API, once the schema is migrated (a `503` before, not the
    /// `500` of a missing table).
    pub async fn database(&self) -> Result<deadpool_postgres::Object, ApiError> {
        if !self.migrated.load(Ordering::Acquire) {
            return Err(ApiError::Unavailable(
                "the database schema is not migrated yet".into(),
            ));
        }
        Ok(self.pool().get().await?)
    }
}

/// The longest a connection of the reserve beyond `MAX_CONNECTIONS` may take to send a request
/// head or body.
pub const RESERVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Every route of the gateway, for a connection of the reserve beyond `MAX_CONNECTIONS` or not.
pub fn routes(
    state: Arc<State>,
    reserve: bool,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    // The reserve's few connections must come back soon, whatever a client does.
    let body_timeout = match reserve {
        true => state.body_timeout.min(RESERVE_TIMEOUT),
        false => state.body_timeout,
    };
    let cross_origin = cors::cross_origin(&state.cors);
    let cors = cors::filter(&state.cors);
    let other_origins = state.cors != CorsOrigins::None;
    let routes = sse::refused_on_reserve(state.clone(), reserve)
        .or(sse::route(state.clone()))
        .or(health::routes(state.clone()))
        .or(users::routes(state.clone(), body_timeout))
        .or(boards::routes(state.clone(), body_timeout))
        .or(publish::routes(state.clone(), body_timeout))
        .or(paths::routes(state.clone(), body_timeout))
        .or(events::route(state))
        .or(openapi::route())
        .or(web::routes())
        .or(wrong_method())
        .or(web::not_found());
    // A page of another origin goes through warp's CORS filter, and whatever it is refused is
    // answered there, not by the routes without CORS; every answer then varies with `Origin`.
    cross_origin
        .and(routes.clone().with(cors).recover(rejection))
        .or(routes.recover(rejection))
        .map(move |reply| cors::vary(other_origins, reply))
        .with(warp::log::custom(access_log))
}

/// One line per request: its method, its path without the query (where a token may be), the
/// status, the protocol, and how long the answer took to start (a stream's headers, for a
/// stream). `RUST_LOG=info,pgsse::access=warn` leaves it out.
fn access_log(info: warp::log::Info<'_>) {
    log::info!(
        target: "pgsse::access",
        "{} {} {} {:?} {:.1} ms",
        info.method(),
        info.path(),
        info.status().as_u16(),
        info.version(),
        info.elapsed().as_secs_f64() * 1000.0
    );
}

/// Each route's path and the methods it takes, for the `Allow` header of a `405`: the routing
/// table above, seen by path. `*` stands for one segment, a final `**` for the rest. Every route
/// under `/api/` is also in the API's description ([`openapi`]).
pub const ALLOWED: &[(&str, &str)] = &[
    ("/", "GET, HEAD"),
    ("/sse", "GET, HEAD"),
    ("/sse/test", "GET, HEAD"),
    ("/sse/notifications", "GET, HEAD"),
    ("/boards", "GET, HEAD"),
    ("/boards/*", "GET, HEAD"),
    ("/assets/**", "GET, HEAD"),
    ("/api/users", "POST"),
    ("/api/users/*", "GET, HEAD"),
    ("/api/boards", "GET, HEAD, POST"),
    ("/api/boards/*", "GET, HEAD"),
    ("/api/boards/*/paths", "GET, HEAD, POST"),
    ("/api/paths/*", "GET, HEAD"),
    ("/api/sse/send", "POST"),
    ("/api/sse/clients", "GET, HEAD"),
    ("/api/demo/token", "POST, DELETE"),
    ("/api/events", "GET, HEAD"),
    ("/api/openapi.json", "GET, HEAD"),
    ("/healthz", "GET, HEAD"),
    ("/readyz", "GET, HEAD"),
    ("/metrics", "GET, HEAD"),
];

/// A request for a route's path with a method the route does not take: `405` with `Allow`.
/// Anything else is left to the filters after it.
fn wrong_method() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::full().and(warp::method()).and_then(
        |path: warp::path::FullPath, method: Method| async move {
            let allow = allowed(path.as_str()).ok_or_else(warp::reject::not_found)?;
            if allow.split(", ").any(|m| m == method.as_str()) {
                // The route takes the method and refused the request for another reason.
                return Err(warp::reject::not_found());
            }
            let message = format!("{method} is not allowed here; this route takes {allow}");
            Ok(ApiError::MethodNotAllowed { message, allow }.into_response())
        },
    )
}

/// The methods of the route at `path`, if there is one.
fn allowed(path: &str) -> Option<&'static str> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    ALLOWED.iter().find_map(|(pattern, allow)| {
        let pattern: Vec<&str> = pattern.split('/').collect();
        let matches = match pattern.split_last() {
            Some((&"**", head)) => {
                segments.len() > head.len() && head.iter().zip(&segments).all(same_segment)
            }
            _ => pattern.len() == segments.len() && pattern.iter().zip(&segments).all(same_segment),
        };
        matches.then_some(*allow)
    })
}

fn same_segment((pattern, segment): (&&str, &&str)) -> bool {
    *pattern == "*" || pattern == segment
}

/// GET, or HEAD: answered as the GET would be, without the body (hyper leaves it out).
pub fn read() -> impl Filter<Extract = (), Error = Rejection> + Copy {
    warp::get().or(warp::head()).unify()
}

/// Hands the shared state to a handler.
pub fn with_state(
    state: Arc<State>,
) -> impl Filter<Extract = (Arc<State>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Answers what no route accepted, in the same JSON shape as every other error.
async fn rejection(rejection: Rejection) -> Result<Response, Infallible> {
    let err = if rejection.is_not_found() {
        ApiError::NotFound("not found".into())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::BadRequest {
            message: e.to_string(),
            field: None,
        }
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::BadRequest {
            message: e.to_string(),
            field: None,
        }
    } else if let Some(e) = rejection.find::<warp::cors::CorsForbidden>() {
        ApiError::Forbidden(format!("{e} (CORS_ORIGINS)"))
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed {
            message: "method not allowed on this route".into(),
            allow: "",
        }
    } else {
        ApiError::Internal(format!("unhandled rejection: {rejection:?}").into())
    };
    Ok(err.into_response())
}

/// A 201 answer with the created resource and its location.
pub fn created(resource: &impl serde::Serialize, location: String) -> Response {
    let reply = warp::reply::with_status(json(resource), StatusCode::CREATED);
    warp::reply::with_header(reply, LOCATION, location).into_response()
}

/// A JSON reply that ends with a newline, as the output of a command line should (`curl` users'
/// prompts then start on a line of their own).
pub fn json(value: &impl serde::Serialize) -> Response {
    let mut body = match serde_json::to_vec(value) {
        Ok(body) => body,
        Err(err) => {
            log::error!("internal error: a reply cannot be written as JSON: {err}");
            let mut response = Response::new(r#"{"error":"internal error"}"#.into());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return with_json_type(response);
        }
    };
    body.push(b'\n');
    with_json_type(Response::new(body.into()))
}

fn with_json_type(mut response: Response) -> Response {
    let json = warp::http::HeaderValue::from_static("application/json");
    response
        .headers_mut()
        .insert(warp::http::header::CONTENT_TYPE, json);
    response
}

/// A page of results and the address of the next page, if there may be one.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The address of the next page; `null` on the last.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_finds_its_routes_methods() {
        assert_eq!(allowed("/api/boards"), Some("GET, HEAD, POST"));
        assert_eq!(allowed("/api/boards/7/paths/"), Some("GET, HEAD, POST"));
        assert_eq!(allowed("/sse/notifications/"), Some("GET, HEAD"));
        assert_eq!(allowed("/assets/css/style.css"), Some("GET, HEAD"));
        assert_eq!(allowed("/"), Some("GET, HEAD"));
        assert_eq!(allowed("/assets"), None);
        assert_eq!(allowed("/api/boards/7/other"), None);
        assert_eq!(allowed("/nowhere"), None);
    }
}
