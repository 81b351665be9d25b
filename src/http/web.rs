//! The front end: the pages and assets of `web/`, embedded in the binary at build time (see
//! `build.rs`), so the gateway serves them from whatever directory it runs in.
//!
//! Files are not renamed when they change, so every answer says `Cache-Control: no-cache` with an
//! `ETag`: a browser keeps its copy and revalidates it, and gets a bodiless `304` while the file is
//! unchanged. The pages use only the public API and `/sse/notifications/`.

use std::collections::HashMap;
use std::sync::OnceLock;

use warp::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG};
use warp::http::{HeaderValue, StatusCode, Uri};
use warp::path::{FullPath, Tail};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Every file under `web/`: its path there and its bytes.
const FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

/// Pages may load scripts, styles and data from the gateway itself and nothing else.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                      base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn routes() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let home = warp::path::end().and(super::read()).map(home);
    let feed = warp::path!("sse")
        .and(super::read())
        .and(if_none_match())
        .map(feed);
    let trigger = warp::path!("sse" / "test")
        .and(super::read())
        .and(if_none_match())
        .map(trigger);
    let boards = warp::path!("boards")
        .and(super::read())
        .and(if_none_match())
        .map(boards);
    let board = warp::path!("boards" / i64)
        .and(super::read())
        .and(if_none_match())
        .map(board);
    let assets = warp::path("assets")
        .and(warp::path::tail())
        .and(super::read())
        .and(if_none_match())
        .and_then(asset);
    home.or(feed)
        .unify()
        .or(trigger)
        .unify()
        .or(boards)
        .unify()
        .or(board)
        .unify()
        .or(assets)
        .unify()
}

/// The last route: a browser asking for a page that does not exist gets an HTML page saying so.
/// Everything else (the API, scripts, other methods) is left to the JSON `404`.
pub fn not_found() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("accept"))
        .and_then(missing_page)
}

/// GET /: the feed is the front page.
fn home() -> Response {
    warp::redirect::see_other(Uri::from_static("/sse/")).into_response()
}

/// GET /sse/: the live event feed.
fn feed(tag: Option<String>) -> Response {
    file("sse.html", tag.as_deref())
}

/// GET /sse/test/: forms that create users, boards and paths through the API.
fn trigger(tag: Option<String>) -> Response {
    file("trigger.html", tag.as_deref())
}

/// GET /boards/: the list of boards.
fn boards(tag: Option<String>) -> Response {
    file("boards.html", tag.as_deref())
}

/// GET /boards/{id}: one board, drawn live. The page reads the id from its own address.
fn board(_id: i64, tag: Option<String>) -> Response {
    file("board.html", tag.as_deref())
}

/// GET /assets/{file}: scripts, styles and images.
async fn asset(tail: Tail, tag: Option<String>) -> Result<Response, Rejection> {
    let name = format!("assets/{}", tail.as_str());
    match files().get(name.as_str()) {
        Some(_) => Ok(file(&name, tag.as_deref())),
        None => Err(warp::reject::not_found()),
    }
}

/// GET any other path, from a browser: the `404` page.
async fn missing_page(
    method: warp::http::Method,
    path: FullPath,
    accept: Option<String>,
) -> Result<Response, Rejection> {
    let api = path.as_str() == "/api" || path.as_str().starts_with("/api/");
    let wants_html = accept.is_some_and(|a| a.contains("text/html"));
    if method != warp::http::Method::GET || api || !wants_html {
        return Err(warp::reject::not_found());
    }
    let mut response = file("404.html", None);
    *response.status_mut() = StatusCode::NOT_FOUND;
    Ok(response)
}

/// An embedded file, or `304 Not Modified` when the client's copy (`tag`) is current.
fn file(name: &str, tag: Option<&str>) -> Response {
    let file = files()
        .get(name)
        .unwrap_or_else(|| panic!("web/{name} is embedded"));
    let mut response = if tag.is_some_and(|t| matches_etag(t, &file.etag)) {
        let mut response = Response::default();
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(file.bytes.into());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(file.content_type));
        if file.content_type.starts_with("text/html") {
            headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
        }
        response
    };
    let headers = response.headers_mut();
    headers.insert(
        ETAG,
        HeaderValue::from_str(&file.etag).expect("hex is a header value"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn if_none_match(
) -> impl Filter<Extract = (Option<String>,), Error = std::convert::Infallible> + Clone {
    warp::header::optional::<String>("if-none-match")
        .or(warp::any().map(|| None))
        .unify()
}

/// Whether an `If-None-Match` value (`*`, or a list of tags, weak or strong) names `etag`.
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

struct File {
    bytes: &'static [u8],
    content_type: &'static str,
    etag: String,
}

fn files() -> &'static HashMap<&'static str, File> {
    static FILES_BY_NAME: OnceLock<HashMap<&'static str, File>> = OnceLock::new();
    FILES_BY_NAME.get_or_init(|| {
        FILES
            .iter()
            .map(|(name, bytes)| {
                let file = File {
                    bytes,
                    content_type: content_type(name),
                    etag: format!("\"{:016x}\"", fnv1a(bytes)),
                };
                (*name, file)
            })
            .collect()
    })
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A 64-bit FNV-1a hash: enough to tell versions of a file apart, and the same in every build.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_and_asset_is_embedded_with_a_known_content_type() {
        for page in [
            "sse.html",
            "trigger.html",
            "boards.html",
            "board.html",
            "404.html",
        ] {
            assert!(files().contains_key(page), "{page}");
        }
        for (name, file) in files() {
            assert_ne!(file.content_type, "application/octet-stream", "{name}");
        }
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_the_wildcard() {
        assert!(matches_etag("\"a\"", "\"a\""));
        assert!(matches_etag("\"b\", W/\"a\"", "\"a\""));
        assert!(matches_etag("*", "\"a\""));
        assert!(!matches_etag("\"b\"", "\"a\""));
    }
}
