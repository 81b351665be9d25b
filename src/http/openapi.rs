//! The API's OpenAPI 3.1 description, served at `GET /api/openapi.json`.
//!
//! utoipa writes it from the handlers' `#[utoipa::path]` attributes and the request and response
//! types (their `ToSchema` derives), so a field added to a type is in the description without
//! anyone remembering to add it. The routes it covers are listed once, in [`ApiDoc`].

use std::sync::LazyLock;

use bytes::Bytes;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use warp::http::header::CONTENT_TYPE;
use warp::http::HeaderValue;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::auth::COOKIE;
use super::error::ErrorBody;
use super::position::Described;
use super::{boards, events, health, paths, publish, sse, users};

/// Every route the description covers: the REST API under `/api/`, the event stream and the
/// probes, not the pages. A route added to the gateway goes here too; the `openapi` integration
/// test fails for a route in `ALLOWED` under `/api/` that is missing here.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "pgsse",
        description = "Turns rows written to PostgreSQL into Server-Sent Events. \
            This describes the REST API under /api/, the event stream /sse/notifications/ and the \
            probes /healthz, /readyz and /metrics; the web pages are left out. Every GET also \
            answers HEAD, as it would the GET but without the body. A method a path does not \
            list is answered 405 with an Allow header and the Error body; a path that is not \
            here, 404. Errors are JSON: {\"error\": \"message\", \"field\": \"name\"?}. \
            Tokens are checked only when the gateway runs with AUTH_JWT_SECRET; without it the \
            routes that list a security requirement are open."
    ),
    paths(
        users::create,
        users::get,
        boards::create,
        boards::list,
        boards::get,
        paths::create,
        paths::list,
        paths::get,
        publish::send,
        publish::clients,
        publish::demo_token,
        publish::sign_out,
        events::list,
        sse::open,
        health::health,
        health::ready,
        health::metrics,
        document,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Security, &Described, &HeadAsGet),
)]
struct ApiDoc;

/// The description as JSON, written once.
static JSON: LazyLock<Bytes> = LazyLock::new(|| {
    let json = ApiDoc::openapi()
        .to_json()
        .expect("the API description serialises");
    Bytes::from(json + "\n")
});

/// Writes the description now, so that the first request does not wait for it.
pub fn prepare() {
    LazyLock::force(&JSON);
}

/// GET /api/openapi.json
pub fn route() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "openapi.json")
        .and(super::read())
        .map(document)
}

/// This description of the API.
#[utoipa::path(get, operation_id = "openapi", path = "/api/openapi.json", tag = "meta", responses(
    (status = 200, description = "The OpenAPI 3.1 description of the API.",
        content_type = "application/json", body = Object),
))]
fn document() -> Response {
    let mut response = Response::new(JSON.clone().into());
    let json = HeaderValue::from_static("application/json");
    response.headers_mut().insert(CONTENT_TYPE, json);
    response
}

/// The ways a request may carry its access token (see `http::auth`).
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("An HS256 token signed with AUTH_JWT_SECRET."))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let cookie =
            ApiKeyValue::with_description(COOKIE, "The token as a cookie, as a page has it.");
        components.add_security_scheme("cookie", SecurityScheme::ApiKey(ApiKey::Cookie(cookie)));
        let query = ApiKeyValue::with_description(
            "access_token",
            "The token in the query, for an EventSource, which cannot send headers.",
        );
        components.add_security_scheme("query", SecurityScheme::ApiKey(ApiKey::Query(query)));
    }
}

/// Gives every GET its HEAD, which the gateway answers as the GET without the body
/// ([`super::read`]).
struct HeadAsGet;

impl Modify for HeadAsGet {
    fn modify(&self, openapi: &mut Document) {
        for item in openapi.paths.paths.values_mut() {
            let Some(get) = &item.get else { continue };
            let mut head = get.clone();
            head.operation_id = head.operation_id.map(|id| format!("{id}Head"));
            for response in head.responses.responses.values_mut() {
                if let utoipa::openapi::RefOr::T(response) = response {
                    response.content.clear();
                }
            }
            item.head = Some(head);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::http::filter;

    /// utoipa's attributes take only literals, so the bounds are written twice: here they must
    /// agree with the constants the handlers enforce.
    #[test]
    fn the_bounds_described_are_the_ones_enforced() {
        let doc: Value = serde_json::from_slice(&JSON).expect("the description is JSON");
        let schema =
            |name: &str, field: &str| &doc["components"]["schemas"][name]["properties"][field];
        let param = |path: &str, name: &str, bound: &str| {
            let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
            let param = params.iter().find(|p| p["name"] == name).unwrap();
            param["schema"][bound].clone()
        };
        let query = |path: &str, name: &str| param(path, name, "maximum");
        assert_eq!(
            schema("NewUser", "username")["maxLength"],
            users::USERNAME_MAX
        );
        assert_eq!(
            schema("DemoLogin", "username")["maxLength"],
            users::USERNAME_MAX
        );
        assert_eq!(schema("NewBoard", "name")["maxLength"], boards::NAME_MAX);
        assert_eq!(schema("NewPath", "points")["maxItems"], paths::POINTS_MAX);
        assert_eq!(query("/api/boards", "limit"), boards::PAGE_MAX);
        assert_eq!(query("/api/boards/{id}/paths", "limit"), paths::PAGE_MAX);
        assert_eq!(query("/sse/notifications/", "history"), sse::MAX_HISTORY);
        assert_eq!(
            param("/sse/notifications/", "events", "maxItems"),
            filter::MAX_EVENT_NAMES
        );
    }
}
