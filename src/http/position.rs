//! The `Pgsse-Position` header of every `GET` of the REST API: the event log's position in the
//! snapshot the answer was read in ([`crate::store::position`]). A client that opens the stream
//! with `?lastEventId=` it gets exactly the events its answer does not reflect.

use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::Modify;
use warp::http::header::{HeaderName, HeaderValue};
use warp::reply::Response;
use warp::Reply;

/// The header's name. Browsers of other origins may read it (`http::cors`).
pub const HEADER: &str = "pgsse-position";

/// What the API's description says of the header.
const DESCRIPTION: &str = "The id of the newest event the data of this answer reflects, read in \
    the same snapshot: a stream opened with ?lastEventId= this id gets exactly the events \
    committed after it, none the answer already reflects and none missing.";

/// `reply` with the position it was read at.
pub fn with(reply: impl Reply, position: i64) -> Response {
    let mut response = reply.into_response();
    response
        .headers_mut()
        .insert(HeaderName::from_static(HEADER), HeaderValue::from(position));
    response
}

/// Describes the header wherever a route's attribute lists it
/// (`headers(("Pgsse-Position" = i64))`): utoipa takes only literals there, and the description
/// is written once, here.
pub struct Described;

impl Modify for Described {
    fn modify(&self, openapi: &mut Document) {
        let gets = openapi
            .paths
            .paths
            .values_mut()
            .filter_map(|item| item.get.as_mut());
        for response in gets.flat_map(|get| get.responses.responses.values_mut()) {
            let RefOr::T(response) = response else {
                continue;
            };
            for (name, header) in &mut response.headers {
                if let (true, RefOr::T(header)) = (name.eq_ignore_ascii_case(HEADER), header) {
                    header.description = Some(DESCRIPTION.into());
                }
            }
        }
    }
}
