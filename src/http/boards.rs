//! `/api/boards`.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use utoipa::ToSchema;
use warp::{Filter, Reply};

use super::error::{ApiError, BodyErrors, ErrorBody, Unavailable};
use super::params::{self, Query};
use super::{body, position, validate, with_state, Page, State};
use crate::store::boards::{self, Board, NewBoard};
use crate::store::position::read;

/// The longest board name accepted through the API, in characters.
pub(super) const NAME_MAX: usize = 200;
const PAGE_DEFAULT: i64 = 20;
pub(super) const PAGE_MAX: i64 = 100;

pub fn routes(
    state: Arc<State>,
    body_timeout: Duration,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let create = warp::path!("api" / "boards")
        .and(warp::post())
        .and(body::json(body_timeout))
        .and(with_state(state.clone()))
        .then(create);
    let list = warp::path!("api" / "boards")
        .and(super::read())
        .and(warp::query::<Query>())
        .and(with_state(state.clone()))
        .then(list);
    let get = warp::path!("api" / "boards" / i64)
        .and(super::read())
        .and(with_state(state))
        .then(get);
    create.or(list).or(get)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewBoard)]
struct NewBoardBody {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// The creator's username.
    #[schema(min_length = 1)]
    creator: String,
    #[serde(default = "default_size")]
    #[schema(minimum = 1, maximum = 100)]
    rows: i64,
    #[serde(default = "default_size")]
    #[schema(minimum = 1, maximum = 100)]
    cols: i64,
    /// `[x, y]` grid positions, with `0 <= x < cols` and `0 <= y < rows`.
    #[serde(default)]
    dots: Vec<[i64; 2]>,
}

fn default_size() -> i64 {
    5
}

/// POST /api/boards `{"name", "creator", "rows"?, "cols"?, "dots"?}`
#[utoipa::path(post, operation_id = "createBoard", path = "/api/boards", tag = "boards",
    request_body = NewBoardBody, responses(
    (status = 201, description = "The new board.", body = Board,
        headers(("Location" = String, description = "The board's address."))),
    (status = 422, description = "The creator names no user.", body = ErrorBody),
    BodyErrors, Unavailable,
))]
async fn create(
    body: Result<NewBoardBody, ApiError>,
    state: Arc<State>,
) -> Result<impl Reply, ApiError> {
    let body = body?;
    validate::text("name", &body.name, NAME_MAX)?;
    validate::text("creator", &body.creator, usize::MAX)?;
    let rows = validate::dimension("rows", body.rows)?;
    let cols = validate::dimension("cols", body.cols)?;
    validate::points("dots", &body.dots, rows, cols)?;
    let new = NewBoard {
        name: &body.name,
        creator: &body.creator,
        rows,
        cols,
        dots: serde_json::to_value(&body.dots).expect("numbers serialize"),
    };
    let client = state.database().await?;
    match boards::insert(&client, &new).await? {
        Some(board) => Ok(super::created(&board, format!("/api/boards/{}", board.id))),
        None => Err(ApiError::unprocessable(
            "creator",
            format!("there is no user named {:?}", body.creator),
        )),
    }
}

/// GET /api/boards?limit=20&before={id}: newest first.
#[utoipa::path(get, operation_id = "listBoards", path = "/api/boards", tag = "boards",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100,
            description = "How many boards, 20 unless given."),
        ("before" = Option<i64>, Query, minimum = 1,
            description = "Only boards with a smaller id (the `next` link sets it)."),
    ),
    responses(
        (status = 200, description = "A page of boards, newest first.", body = Page<Board>,
            headers(("Pgsse-Position" = i64))),
        (status = 400, description = "limit or before is not a whole number in its range.",
            body = ErrorBody),
        Unavailable,
    ))]
async fn list(query: Query, state: Arc<State>) -> Result<impl Reply, ApiError> {
    let limit = params::int(&query, "limit", 1, PAGE_MAX)?.unwrap_or(PAGE_DEFAULT);
    let before = params::int(&query, "before", 1, i64::MAX)?;
    let mut client = state.database().await?;
    let (items, at) = read(&mut client, async |c| boards::page(c, before, limit).await).await?;
    let next = match items.last() {
        Some(last) if items.len() as i64 == limit => {
            Some(format!("/api/boards?limit={limit}&before={}", last.id))
        }
        _ => None,
    };
    Ok(position::with(super::json(&Page { items, next }), at))
}

/// GET /api/boards/{id}
#[utoipa::path(get, operation_id = "getBoard", path = "/api/boards/{id}", tag = "boards",
    params(("id" = i64, Path, description = "The board's id.")),
    responses(
        (status = 200, description = "The board.", body = Board, headers(("Pgsse-Position" = i64))),
        (status = 404, description = "There is no such board.", body = ErrorBody,
            headers(("Pgsse-Position" = i64))),
        Unavailable,
    ))]
async fn get(id: i64, state: Arc<State>) -> Result<impl Reply, ApiError> {
    let mut client = state.database().await?;
    let (board, at) = read(&mut client, async |c| boards::by_id(c, id).await).await?;
    let reply = match board {
        Some(board) => Ok(super::json(&board)),
        None => Err(ApiError::NotFound(format!("there is no board {id}"))),
    };
    Ok(position::with(reply, at))
}
