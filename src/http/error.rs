//! The one error type at the HTTP boundary: every failure becomes a JSON body
//! `{"error": "...", "field": "..."}` with the matching status, in one place.

use serde::Serialize;
use tokio_postgres::error::SqlState;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: bad JSON, a wrong type, a value out of range.
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<&'static str>,
    },
    /// No valid access token.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token without the needed role.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// `allow` lists the methods the route takes (empty when not known).
    #[error("{message}")]
    MethodNotAllowed {
        message: String,
        allow: &'static str,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A body that is not JSON where JSON is read.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The client did not send its body in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// Well-formed, but refers to something that does not exist (an unknown user, say).
    #[error("{message}")]
    Unprocessable {
        message: String,
        field: Option<&'static str>,
    },
    /// The gateway is at one of its caps; the client may retry after `retry_after` seconds
    /// (here, or at another instance).
    #[error("{message}")]
    Full { message: String, retry_after: u64 },
    /// PostgreSQL cannot be reached; the client may retry.
    #[error("the database is unavailable, try again shortly")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A fault of ours. Logged with its cause; the client sees only a generic message.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Serialize)]
struct Body<'a> {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn bad_request(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
            field: Some(field),
        }
    }

    pub fn unprocessable(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable {
            message: message.into(),
            field: Some(field),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Full { .. } | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            ApiError::BadRequest { field, .. } | ApiError::Unprocessable { field, .. } => *field,
            _ => None,
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => log::error!("internal error: {cause}"),
            ApiError::Unavailable(cause) => log::warn!("database unavailable: {cause}"),
            _ => {}
        }
        let body = Body {
            error: self.to_string(),
            field: self.field(),
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status()).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized(_) => {
                let challenge = HeaderValue::from_static("Bearer");
                headers.insert("www-authenticate", challenge);
            }
            ApiError::MethodNotAllowed { allow, .. } if !allow.is_empty() => {
                headers.insert("allow", HeaderValue::from_static(allow));
            }
            ApiError::Full { retry_after, .. } => {
                headers.insert("retry-after", HeaderValue::from(retry_after));
                headers.insert("cache-control", HeaderValue::from_static("no-store"));
            }
            _ => {}
        }
        response
    }
}

impl From<tokio_postgres::Error> for ApiError {
    /// Database errors the client caused become 4xx; a lost connection is a 503. Handlers
    /// validate input first, so these are the backstop, not the usual path.
    fn from(err: tokio_postgres::Error) -> ApiError {
        let Some(db) = err.as_db_error() else {
            let io = std::error::Error::source(&err).is_some_and(|s| s.is::<std::io::Error>());
            return if err.is_closed() || io {
                ApiError::Unavailable(err.into())
            } else {
                ApiError::Internal(err.into())
            };
        };
        let constraint = db.constraint().unwrap_or("a constraint").to_owned();
        match *db.code() {
            SqlState::UNIQUE_VIOLATION => ApiError::Conflict(format!("violates {constraint}")),
            SqlState::FOREIGN_KEY_VIOLATION => ApiError::Unprocessable {
                message: format!("refers to a row that does not exist ({constraint})"),
                field: None,
            },
            SqlState::CHECK_VIOLATION | SqlState::NOT_NULL_VIOLATION => ApiError::BadRequest {
                message: format!("violates {constraint}"),
                field: None,
            },
            ref code if code.code().starts_with("22") => ApiError::BadRequest {
                message: db.message().to_owned(),
                field: None,
            },
            SqlState::ADMIN_SHUTDOWN
            | SqlState::CANNOT_CONNECT_NOW
            | SqlState::TOO_MANY_CONNECTIONS => ApiError::Unavailable(err.into()),
            _ => ApiError::Internal(err.into()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> ApiError {
        ApiError::Unavailable(err.into())
    }
}
