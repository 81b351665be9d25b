//! The one error type at the HTTP boundary: every failure becomes a JSON body
//! `{"error": "...", "field": "..."}` with the matching status, in one place.

use serde::Serialize;
use utoipa::IntoResponses;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use crate::store::StoreError;

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

/// The body of every error answer, in the API's description as `Error`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// What went wrong, in a sentence meant for the person who sent the request.
    error: String,
    /// The request field, query parameter or header at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

// The errors a route's description lists besides its own (see `openapi`), by what the route
// does. They are never built: utoipa reads their variants.

/// What a route that reads a JSON body may answer about the body itself.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BodyErrors {
    /// Malformed JSON, a wrong type, an unknown field, or a value outside its bounds (`field`
    /// names it).
    #[response(status = 400)]
    BadRequest(ErrorBody<'static>),
    /// The body did not arrive within `BODY_READ_TIMEOUT_SECS`.
    #[response(status = 408)]
    RequestTimeout(ErrorBody<'static>),
    /// The body is over 64 KiB.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody<'static>),
    /// The body was not sent with `Content-Type: application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody<'static>),
}

/// What a route that reads the database answers while it cannot.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Unavailable {
    /// The database cannot be reached, or the gateway has not migrated its schema yet; retry.
    #[response(status = 503)]
    Unavailable(ErrorBody<'static>),
}

/// What a route that needs an administrator answers when authentication is on.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum AdminErrors {
    /// Two `Authorization` headers, or one that is not text.
    #[response(status = 400)]
    BadRequest(ErrorBody<'static>),
    /// Authentication is on and the token is missing or not valid (`WWW-Authenticate: Bearer`).
    #[response(status = 401)]
    Unauthorized(ErrorBody<'static>),
    /// The token is not an administrator's, or a request signed in by the cookie comes from
    /// another site.
    #[response(status = 403)]
    Forbidden(ErrorBody<'static>),
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
        let body = ErrorBody {
            error: self.to_string(),
            field: self.field(),
        };
        let mut response =
            warp::reply::with_status(super::json(&body), self.status()).into_response();
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

impl From<StoreError> for ApiError {
    /// Database errors the client caused become 4xx, without the names of the schema's
    /// constraints; a lost connection is a 503. Handlers validate input first and turn the
    /// errors they expect into better messages, so this is the backstop, not the usual path.
    fn from(err: StoreError) -> ApiError {
        if let StoreError::Duplicate { .. }
        | StoreError::MissingReference { .. }
        | StoreError::Invalid { .. } = &err
        {
            log::info!("a request was refused by the database: it {err}");
        }
        match err {
            StoreError::Duplicate { .. } => {
                ApiError::Conflict("conflicts with a row that exists already".into())
            }
            StoreError::MissingReference { .. } => ApiError::Unprocessable {
                message: "refers to a row that does not exist".into(),
                field: None,
            },
            StoreError::Invalid { .. } => ApiError::BadRequest {
                message: "a value breaks a rule of the table".into(),
                field: None,
            },
            StoreError::Refused { message, .. } => ApiError::BadRequest {
                message,
                field: None,
            },
            StoreError::Unavailable(err) => ApiError::Unavailable(err.into()),
            StoreError::Other(err) => ApiError::Internal(err.into()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> ApiError {
        ApiError::Unavailable(err.into())
    }
}
