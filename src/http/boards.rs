//! `/api/boards`.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use warp::{Filter, Reply};

use super::error::ApiError;
use super::params::{self, Query};
use super::{body, validate, with_state, Page, State};
use crate::store::boards::{self, NewBoard};

/// The longest board name accepted through the API, in characters.
const NAME_MAX: usize = 200;
const PAGE_DEFAULT: i64 = 20;
const PAGE_MAX: i64 = 100;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBoardBody {
    name: String,
    /// The creator's username.
    creator: String,
    #[serde(default = "default_size")]
    rows: i64,
    #[serde(default = "default_size")]
    cols: i64,
    #[serde(default)]
    dots: Vec<[i64; 2]>,
}

fn default_size() -> i64 {
    5
}

/// POST /api/boards `{"name", "creator", "rows"?, "cols"?, "dots"?}`
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
async fn list(query: Query, state: Arc<State>) -> Result<impl Reply, ApiError> {
    let limit = params::int(&query, "limit", 1, PAGE_MAX)?.unwrap_or(PAGE_DEFAULT);
    let before = params::int(&query, "before", 1, i64::MAX)?;
    let client = state.database().await?;
    let items = boards::page(&client, before, limit).await?;
    let next = match items.last() {
        Some(last) if items.len() as i64 == limit => {
            Some(format!("/api/boards?limit={limit}&before={}", last.id))
        }
        _ => None,
    };
    Ok(super::json(&Page { items, next }))
}

/// GET /api/boards/{id}
async fn get(id: i64, state: Arc<State>) -> Result<impl Reply, ApiError> {
    let client = state.database().await?;
    match boards::by_id(&client, id).await? {
        Some(board) => Ok(super::json(&board)),
        None => Err(ApiError::NotFound(format!("there is no board {id}"))),
    }
}
