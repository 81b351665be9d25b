//! Reading JSON request bodies, with a size limit.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::Filter;

use super::error::ApiError;

/// The largest request body the API reads.
pub const LIMIT: usize = 64 * 1024;

/// Extracts the body parsed as `T`, or the error to answer with. It never rejects, so a bad body
/// is answered by the route that matched instead of falling through to the next one. The whole
/// body must arrive within `timeout`, and say `Content-Type: application/json` (which also keeps
/// other sites' plain HTML forms out).
pub fn json<T: DeserializeOwned + Send>(
    timeout: Duration,
) -> impl Filter<Extract = (Result<T, ApiError>,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::stream())
        .then(
            move |length: Option<u64>, kind: Option<String>, body| async move {
                if !kind.as_deref().is_some_and(is_json) {
                    return Err(ApiError::UnsupportedMediaType(format!(
                        "the request body must be JSON, sent with Content-Type: application/json \
                         (got {})",
                        kind.as_deref().unwrap_or("none")
                    )));
                }
                // A declared length over the limit is refused before reading a byte.
                if length.is_some_and(|n| n > LIMIT as u64) {
                    return Err(too_large());
                }
                let bytes = tokio::time::timeout(timeout, read_limited(body))
                    .await
                    .map_err(|_| {
                        ApiError::RequestTimeout(format!(
                            "the request body did not arrive within {} s",
                            timeout.as_secs()
                        ))
                    })??;
                parse(&bytes)
            },
        )
}

/// `application/json`, with or without parameters such as `charset=utf-8`.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the request body is over the limit of {LIMIT} bytes"
    ))
}

async fn read_limited<S, B>(body: S) -> Result<BytesMut, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut bytes = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| ApiError::BadRequest {
            message: format!("cannot read the request body: {e}"),
            field: None,
        })?;
        if bytes.len() + chunk.remaining() > LIMIT {
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            bytes.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(bytes)
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            message: "the request body is empty; expected a JSON object".into(),
            field: None,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest {
        message: format!("invalid JSON body: {e}"),
        field: None,
    })
}
