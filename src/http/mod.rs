//! The HTTP surface: a routing table, the state handlers share, and the translation of warp's
//! own rejections (unknown route, wrong method, bad query) into the API's JSON errors.

mod auth;
mod boards;
mod body;
mod chunk;
mod direct;
pub mod error;
mod filter;
mod gate;
mod health;
mod params;
mod paths;
mod publish;
pub mod server;
mod sse;
mod stream;
mod users;
mod validate;
mod web;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use warp::http::header::LOCATION;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use self::error::ApiError;
use crate::auth::Verifier;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::shutdown::Shutdown;

/// What every handler can reach.
pub struct State {
    pub pool: Pool,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    /// Quiet time after which a stream gets a keep-alive comment.
    pub keepalive: Duration,
    /// How long a client may stay behind the live stream before it is disconnected to resume.
    pub slow_client: Duration,
    /// The kernel send buffer of a stream's socket; `None` leaves the kernel's sizing.
    pub stream_send_buffer: Option<usize>,
    /// Streams end when this fires; each stream holds a clone.
    pub shutdown: Shutdown,
    /// Checks access tokens; `None` when authentication is off.
    pub auth: Option<Verifier>,
    /// The connected streams.
    pub registry: Arc<Registry>,
    /// Whether `POST /api/demo/token` hands out tokens (demos only).
    pub demo_tokens: bool,
}

/// Every route of the gateway.
pub fn routes(
    state: Arc<State>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    sse::route(state.clone())
        .or(health::routes(state.clone()))
        .or(users::routes(state.clone()))
        .or(boards::routes(state.clone()))
        .or(publish::routes(state.clone()))
        .or(paths::routes(state))
        .or(web::routes())
        .or(web::not_found())
        .recover(rejection)
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
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed("method not allowed on this route".into())
    } else {
        ApiError::Internal(format!("unhandled rejection: {rejection:?}").into())
    };
    Ok(err.into_response())
}

/// A 201 answer with the created resource and its location.
pub fn created(resource: &impl serde::Serialize, location: String) -> Response {
    let reply = warp::reply::with_status(warp::reply::json(resource), StatusCode::CREATED);
    warp::reply::with_header(reply, LOCATION, location).into_response()
}

/// A page of results and the address of the next page, if there may be one.
#[derive(serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}
