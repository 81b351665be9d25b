//! Cross-origin requests (`CORS_ORIGINS`), answered through warp's CORS filter: preflights, the
//! `Access-Control-*` headers, and a `403` for an origin that is not let in. The gateway's own
//! pages are not cross-origin and never meet the filter. With `CORS_ORIGINS` set, every answer
//! says `Vary: Origin`.

use warp::host::Authority;
use warp::http::header::VARY;
use warp::http::HeaderValue;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::config::CorsOrigins;

/// warp's CORS filter for `origins`: the routes' methods, the headers pages send (the access
/// token, a stream's `Last-Event-ID`) and those they may read (the REST API's `Pgsse-Position`),
/// with credentials only for listed origins.
pub fn filter(origins: &CorsOrigins) -> warp::cors::Builder {
    let cors = warp::cors()
        .allow_methods(["GET", "HEAD", "POST", "DELETE"])
        .allow_headers([
            "content-type",
            "authorization",
            "last-event-id",
            "cache-control",
        ])
        .expose_headers(["retry-after", "location", super::position::HEADER])
        .max_age(600);
    match origins {
        CorsOrigins::None => cors,
        CorsOrigins::Any => cors.allow_any_origin(),
        CorsOrigins::Listed(list) => cors
            .allow_origins(list.iter().map(String::as_str))
            .allow_credentials(true),
    }
}

/// `reply` with `Vary: Origin` when other origins may come at all (`CORS_ORIGINS` is set): then
/// whether an answer has `Access-Control-Allow-Origin`, and which (warp's filter repeats the
/// request's `Origin`, for `*` too), depends on the request's `Origin`, so a shared cache must
/// not give one origin's answer to another, nor an answer without the header to another origin.
pub fn vary(other_origins: bool, reply: impl Reply) -> Response {
    let mut response = reply.into_response();
    if other_origins {
        response
            .headers_mut()
            .append(VARY, HeaderValue::from_static("origin"));
    }
    response
}

/// Passes a request from a page of another origin, when other origins may come at all; rejects
/// the rest, which the routes answer without CORS.
pub fn cross_origin(origins: &CorsOrigins) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    let enabled = *origins != CorsOrigins::None;
    warp::header::optional::<String>("origin")
        .and(warp::host::optional())
        .and_then(
            move |origin: Option<String>, host: Option<Authority>| async move {
                let host = host.as_ref().map(Authority::as_str);
                match origin {
                    Some(origin) if enabled && !same_origin(&origin, host) => Ok(()),
                    _ => Err(warp::reject::not_found()),
                }
            },
        )
        .untuple_one()
}

/// Whether a page on `origin` is one of the gateway's own, asked for as `host`.
pub fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let origin_host = origin.split_once("://").map(|(_, host)| host);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}
