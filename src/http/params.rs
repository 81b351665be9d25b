//! Query-string parameters, with errors that name the parameter.

use super::error::ApiError;

pub type Query = Vec<(String, String)>;

/// The last value given for `name`, if any.
pub fn get<'q>(query: &'q Query, name: &str) -> Option<&'q str> {
    query
        .iter()
        .rfind(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// An optional whole-number parameter within `min..=max`.
pub fn int(query: &Query, name: &'static str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
    whole_number(name, get(query, name), min, max)
}

/// The value of parameter `name`, if given, as a whole number within `min..=max` (empty is none).
pub fn whole_number(
    name: &'static str,
    value: Option<&str>,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match value.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::bad_request(
            name,
            format!("{name} must be a whole number from {min} to {max}, got {value:?}"),
        )),
    }
}

/// The value of on/off parameter `name`: `1` or `0` (absent or empty is off).
pub fn flag(name: &'static str, value: Option<&str>) -> Result<bool, ApiError> {
    match value.unwrap_or("") {
        "" | "0" => Ok(false),
        "1" => Ok(true),
        value => Err(ApiError::bad_request(
            name,
            format!("{name} must be 1 (on) or 0 (off), got {value:?}"),
        )),
    }
}
