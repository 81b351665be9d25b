//! `/api/boards/{id}/paths` and `/api/paths/{id}`.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use utoipa::ToSchema;
use warp::{Filter, Reply};

use super::error::{ApiError, BodyErrors, ErrorBody, Unavailable};
use super::params::{self, Query};
use super::{body, position, validate, with_state, Page, State};
use crate::store::boards;
use crate::store::paths::{self, Path};
use crate::store::position::read;

const PAGE_DEFAULT: i64 = 100;
pub(super) const PAGE_MAX: i64 = 1000;
/// The most points one path may have.
pub(super) const POINTS_MAX: usize = 10_000;

pub fn routes(
    state: Arc<State>,
    body_timeout: Duration,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let create = warp::path!("api" / "boards" / i64 / "paths")
        .and(warp::post())
        .and(body::json(body_timeout))
        .and(with_state(state.clone()))
        .then(create);
    let list = warp::path!("api" / "boards" / i64 / "paths")
        .and(super::read())
        .and(warp::query::<Query>())
        .and(with_state(state.clone()))
        .then(list);
    let get = warp::path!("api" / "paths" / i64)
        .and(super::read())
        .and(with_state(state))
        .then(get);
    create.or(list).or(get)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPath {
    /// The drawing user's username.
    #[schema(min_length = 1)]
    user: String,
    /// `[x, y]` grid positions in drawing order, inside the board's grid.
    #[schema(min_items = 1, max_items = 10000)]
    points: Vec<[i64; 2]>,
}

/// POST /api/boards/{id}/paths `{"user", "points": [[x, y], …]}`
#[utoipa::path(post, operation_id = "createPath", path = "/api/boards/{id}/paths", tag = "paths",
    request_body = NewPath,
    params(("id" = i64, Path, description = "The board's id.")),
    responses(
        (status = 201, description = "The new path.", body = Path,
            headers(("Location" = String, description = "The path's address."))),
        (status = 404, description = "There is no such board.", body = ErrorBody),
        (status = 422, description = "The user names no user.", body = ErrorBody),
        BodyErrors, Unavailable,
    ))]
async fn create(
    board_id: i64,
    body: Result<NewPath, ApiError>,
    state: Arc<State>,
) -> Result<impl Reply, ApiError> {
    let body = body?;
    validate::text("user", &body.user, usize::MAX)?;
    if body.points.is_empty() || body.points.len() > POINTS_MAX {
        return Err(ApiError::bad_request(
            "points",
            format!("points must hold from 1 to {POINTS_MAX} [x, y] positions"),
        ));
    }
    let client = state.database().await?;
    let board = boards::by_id(&client, board_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("there is no board {board_id}")))?;
    validate::points("points", &body.points, board.rows, board.cols)?;
    let points = serde_json::to_value(&body.points).expect("numbers serialize");
    match paths::insert(&client, board_id, &body.user, &points).await? {
        Some(path) => Ok(super::created(&path, format!("/api/paths/{}", path.id))),
        None => Err(ApiError::unprocessable(
            "user",
            format!("there is no user named {:?}", body.user),
        )),
    }
}

/// GET /api/boards/{id}/paths?limit=100&after={path id}: in drawing order.
#[utoipa::path(get, operation_id = "listPaths", path = "/api/boards/{id}/paths", tag = "paths",
    params(
        ("id" = i64, Path, description = "The board's id."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000,
            description = "How many paths, 100 unless given."),
        ("after" = Option<i64>, Query, minimum = 0,
            description = "Only paths with a greater id (the `next` link sets it)."),
    ),
    responses(
        (status = 200, description = "A page of the board's paths, in drawing order.",
            body = Page<Path>, headers(("Pgsse-Position" = i64))),
        (status = 400, description = "limit or after is not a whole number in its range.",
            body = ErrorBody),
        (status = 404, description = "There is no such board.", body = ErrorBody,
            headers(("Pgsse-Position" = i64))),
        Unavailable,
    ))]
async fn list(board_id: i64, query: Query, state: Arc<State>) -> Result<impl Reply, ApiError> {
    let limit = params::int(&query, "limit", 1, PAGE_MAX)?.unwrap_or(PAGE_DEFAULT);
    let after = params::int(&query, "after", 0, i64::MAX)?.unwrap_or(0);
    let mut client = state.database().await?;
    let (items, at) = read(&mut client, async |c| {
        match boards::by_id(c, board_id).await? {
            Some(_) => Ok(Some(paths::page(c, board_id, after, limit).await?)),
            None => Ok(None),
        }
    })
    .await?;
    let Some(items) = items else {
        let missing = ApiError::NotFound(format!("there is no board {board_id}"));
        return Ok(position::with(missing, at));
    };
    let next = match items.last() {
        Some(last) if items.len() as i64 == limit => Some(format!(
            "/api/boards/{board_id}/paths?limit={limit}&after={}",
            last.id
        )),
        _ => None,
    };
    Ok(position::with(super::json(&Page { items, next }), at))
}

/// GET /api/paths/{id}
#[utoipa::path(get, operation_id = "getPath", path = "/api/paths/{id}", tag = "paths",
    params(("id" = i64, Path, description = "The path's id.")),
    responses(
        (status = 200, description = "The path.", body = Path, headers(("Pgsse-Position" = i64))),
        (status = 404, description = "There is no such path.", body = ErrorBody,
            headers(("Pgsse-Position" = i64))),
        Unavailable,
    ))]
async fn get(id: i64, state: Arc<State>) -> Result<impl Reply, ApiError> {
    let mut client = state.database().await?;
    let (path, at) = read(&mut client, async |c| paths::by_id(c, id).await).await?;
    let reply = match path {
        Some(path) => Ok(super::json(&path)),
        None => Err(ApiError::NotFound(format!("there is no path {id}"))),
    };
    Ok(position::with(reply, at))
}
