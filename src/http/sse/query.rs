//! The stream's query parameters, each named once: [`StreamQuery`] gives its name, its
//! description and its bounds to the API's description, its name to the check for other
//! spellings, and its value to the checks that make a stream request of it.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;
use utoipa::openapi::path::ParameterIn;
use utoipa::IntoParams;
use warp::http::HeaderMap;

use super::super::auth;
use super::super::error::ApiError;
use super::super::filter;
use super::super::params::{self, Query};
use crate::auth::Claims;
use crate::registry::Claim;
use crate::stream::EventFilter;

/// The most ids back `?history=` may ask a new stream to start.
pub(crate) const MAX_HISTORY: i64 = 100;

/// The query of a stream request, each value as given (the last, when one is given twice).
/// Other parameters are ignored (cache-busters such as `_=17…`), but another spelling of one of
/// these (`boardId`, `lastEventID`, `event`, `access-token`) would silently do nothing, so it is
/// refused with the right name.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this event id.
    #[serde(rename = "lastEventId")]
    #[param(value_type = Option<i64>, minimum = 0)]
    last_event_id: Option<String>,
    /// Comma-separated event kinds to receive, at most 64: newBoard, newPath, or custom kinds of
    /// 1 to 64 letters, digits, '.', '_' or '-'.
    #[param(value_type = Option<Vec<String>>, style = Form, explode = false, max_items = 64)]
    events: Option<String>,
    /// Only events of this board.
    #[param(value_type = Option<i64>, minimum = 1)]
    board_id: Option<String>,
    /// Only events of this topic: the topic a watched table's definition gives its events (the
    /// built-in events' topic is their board's id). 1 to 200 characters.
    #[param(max_length = 200)]
    topic: Option<String>,
    /// Whose targeted events to receive; refused with authentication on, where the token says.
    #[serde(rename = "userId")]
    user_id: Option<String>,
    /// This stream's client.
    #[serde(rename = "clientId")]
    client_id: Option<String>,
    /// This stream's session.
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
    /// The token, for an EventSource, which cannot send headers.
    // Read by `http::auth`, as every route's token is; listed here to be described and checked.
    #[allow(dead_code)]
    access_token: Option<String>,
    /// A stream opened without Last-Event-ID or lastEventId starts this many ids before the
    /// newest event, so it opens with recent history; ignored when resuming.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    history: Option<String>,
    /// 1: every event goes out unnamed (an EventSource's `message`), its data {"kind": name,
    /// "data": the usual data}, so a page gets every kind.
    #[param(value_type = Option<u8>, minimum = 0, maximum = 1)]
    envelope: Option<String>,
}

impl StreamQuery {
    /// Reads a stream request's query, refusing another spelling of one of its parameters.
    pub fn parse(query: &Query) -> Result<StreamQuery, ApiError> {
        check_parameter_names(query)?;
        // Into a map first, so that the last value given for a name wins.
        let values = query
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        let parsed = serde_json::from_value(Value::Object(values));
        Ok(parsed.expect("every parameter is optional text"))
    }

    /// Where the stream resumes. The header is what a browser sends when it reconnects; it wins
    /// over the query parameter.
    pub fn last_event_id(&self, headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
        match auth::single_header(headers, "Last-Event-ID")? {
            Some(value) => parse_event_id("Last-Event-ID", value),
            None => match &self.last_event_id {
                Some(value) => parse_event_id("lastEventId", value),
                None => Ok(None),
            },
        }
    }

    pub fn filter(&self) -> Result<EventFilter, ApiError> {
        filter::parse(
            self.events.as_deref(),
            self.board_id.as_deref(),
            self.topic.as_deref(),
        )
    }

    /// How many ids back a new stream starts; 0 for none.
    pub fn history(&self) -> Result<i64, ApiError> {
        let history = params::whole_number("history", self.history.as_deref(), 1, MAX_HISTORY)?;
        Ok(history.unwrap_or(0))
    }

    pub fn envelope(&self) -> Result<bool, ApiError> {
        params::flag("envelope", self.envelope.as_deref())
    }

    /// Who the stream is for: whom its token names, with authentication on; otherwise whom it
    /// says.
    pub fn claim(&self, claims: Option<&Claims>) -> Result<Claim, ApiError> {
        let user = match claims {
            Some(claims) if self.user_id.is_some() => {
                return Err(ApiError::bad_request(
                    "userId",
                    format!("userId is not accepted with authentication on; this stream is {:?}'s, from its token", claims.sub),
                ))
            }
            Some(claims) => Some(claims.sub.clone()),
            None => stream_name("userId", &self.user_id)?,
        };
        Ok(Claim {
            user,
            client_id: stream_name("clientId", &self.client_id)?,
            session_id: stream_name("sessionId", &self.session_id)?,
            authenticated: claims.is_some(),
        })
    }
}

/// The names of the stream's query parameters, as [`StreamQuery`] lists them.
static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let parameters = StreamQuery::into_params(|| Some(ParameterIn::Query));
    parameters.into_iter().map(|p| p.name).collect()
});

fn check_parameter_names(query: &Query) -> Result<(), ApiError> {
    let names: &'static [String] = &NAMES;
    for (name, _) in query {
        if names.contains(name) {
            continue;
        }
        if let Some(right) = names.iter().find(|p| same_name(p, name)) {
            return Err(ApiError::bad_request(
                right,
                format!("there is no stream parameter {name:?}; did you mean {right}?"),
            ));
        }
    }
    Ok(())
}

/// Whether two parameter names differ only in case, separators or a plural `s`.
fn same_name(a: &str, b: &str) -> bool {
    let key = |name: &str| {
        let key: String = name
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        key.strip_suffix('s').map(str::to_owned).unwrap_or(key)
    };
    key(a) == key(b)
}

/// An optional name a stream declares for itself (`userId` without authentication, `clientId`,
/// `sessionId`): 1 to 128 letters, digits, `.`, `_`, `-`, `:` or `@`.
fn stream_name(name: &'static str, value: &Option<String>) -> Result<Option<String>, ApiError> {
    let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let allowed = |c: char| c.is_alphanumeric() || "._-:@".contains(c);
    if value.chars().count() <= 128 && value.chars().all(allowed) {
        Ok(Some(value.to_owned()))
    } else {
        Err(ApiError::bad_request(
            name,
            format!(
                "{name} must be 1 to 128 letters, digits, '.', '_', '-', ':' or '@', got {value:?}"
            ),
        ))
    }
}

/// An event id as a client sends it back: decimal digits that fit an id. Empty means none.
fn parse_event_id(name: &'static str, value: &str) -> Result<Option<i64>, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(id) = value.parse::<i64>() {
            return Ok(Some(id));
        }
    }
    Err(ApiError::bad_request(
        name,
        format!(
            "{name} must be an event id (a whole number from 0 to {}), got {value:?}",
            i64::MAX
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_spellings_of_a_parameter_are_told_apart_from_unknown_ones() {
        for (given, right) in [
            ("boardId", "board_id"),
            ("event", "events"),
            ("lastEventID", "lastEventId"),
            ("access-token", "access_token"),
            ("ClientID", "clientId"),
        ] {
            let query = vec![(given.to_owned(), "1".to_owned())];
            let err = check_parameter_names(&query).unwrap_err();
            assert!(
                err.to_string().contains(&format!("did you mean {right}?")),
                "{err}"
            );
        }
        let fine: Query = ["_", "lastEventId", "v", "board_id"]
            .iter()
            .map(|name| (name.to_string(), "1".to_owned()))
            .collect();
        assert!(check_parameter_names(&fine).is_ok());
    }

    #[test]
    fn the_last_value_given_for_a_parameter_is_the_one_read() {
        let query: Query = [("history", "500"), ("_", "1"), ("history", "3")]
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let query = StreamQuery::parse(&query).unwrap();
        assert_eq!(query.history().unwrap(), 3);
    }

    #[test]
    fn event_ids_are_plain_decimal_numbers() {
        assert_eq!(parse_event_id("x", "42").unwrap(), Some(42));
        assert_eq!(parse_event_id("x", "").unwrap(), None);
        assert_eq!(parse_event_id("x", " 7 ").unwrap(), Some(7));
        for bad in ["abc", "-1", "1.5", "+3", "123456789012345678901234567890"] {
            assert!(parse_event_id("x", bad).is_err(), "{bad}");
        }
    }
}
