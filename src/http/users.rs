//! `/api/users`.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use utoipa::ToSchema;
use warp::{Filter, Reply};

use super::error::{ApiError, BodyErrors, ErrorBody, Unavailable};
use super::{body, position, validate, with_state, State};
use crate::store::position::read;
use crate::store::users::{self, User};
use crate::store::StoreError;

/// The longest username accepted, in characters.
pub(super) const USERNAME_MAX: usize = 64;

pub fn routes(
    state: Arc<State>,
    body_timeout: Duration,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let create = warp::path!("api" / "users")
        .and(warp::post())
        .and(body::json(body_timeout))
        .and(with_state(state.clone()))
        .then(create);
    let get = warp::path!("api" / "users" / i64)
        .and(super::read())
        .and(with_state(state))
        .then(get);
    create.or(get)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUser {
    #[schema(min_length = 1, max_length = 64)]
    username: String,
}

/// POST /api/users `{"username": "alice"}`
#[utoipa::path(post, operation_id = "createUser", path = "/api/users", tag = "users",
    request_body = NewUser, responses(
    (status = 201, description = "The new user.", body = User,
        headers(("Location" = String, description = "The user's address."))),
    (status = 409, description = "The username is taken.", body = ErrorBody),
    BodyErrors, Unavailable,
))]
async fn create(
    body: Result<NewUser, ApiError>,
    state: Arc<State>,
) -> Result<impl Reply, ApiError> {
    let new = body?;
    validate::text("username", &new.username, USERNAME_MAX)?;
    let client = state.database().await?;
    match users::insert(&client, &new.username).await {
        Ok(user) => Ok(super::created(&user, format!("/api/users/{}", user.id))),
        Err(StoreError::Duplicate { .. }) => Err(ApiError::Conflict(format!(
            "the username {:?} is taken",
            new.username
        ))),
        Err(err) => Err(err.into()),
    }
}

/// GET /api/users/{id}
#[utoipa::path(get, operation_id = "getUser", path = "/api/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user.", body = User, headers(("Pgsse-Position" = i64))),
        (status = 404, description = "There is no such user.", body = ErrorBody,
            headers(("Pgsse-Position" = i64))),
        Unavailable,
    ))]
async fn get(id: i64, state: Arc<State>) -> Result<impl Reply, ApiError> {
    let mut client = state.database().await?;
    let (user, at) = read(&mut client, async |c| users::by_id(c, id).await).await?;
    let reply = match user {
        Some(user) => Ok(super::json(&user)),
        None => Err(ApiError::NotFound(format!("there is no user {id}"))),
    };
    Ok(position::with(reply, at))
}
