//! Checks on request fields, so that bad input is a 400 naming the field, and the database never
//! sees it.

use super::error::ApiError;

/// A name or username: not blank, at most `max_chars` characters, no NUL (which PostgreSQL text
/// cannot hold).
pub fn text(field: &'static str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::bad_request(
            field,
            format!("{field} must not be blank"),
        ));
    }
    if value.contains('\0') {
        return Err(ApiError::bad_request(
            field,
            format!("{field} must not contain NUL characters"),
        ));
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(ApiError::bad_request(
            field,
            format!("{field} is {chars} characters long; the limit is {max_chars}"),
        ));
    }
    Ok(())
}

/// A grid dimension: 1 to 100, as the schema's checks require.
pub fn dimension(field: &'static str, value: i64) -> Result<i32, ApiError> {
    match i32::try_from(value) {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            field,
            format!("{field} must be from 1 to 100, got {value}"),
        )),
    }
}

/// Grid positions `[x, y]` with `0 <= x < cols` and `0 <= y < rows`.
pub fn points(
    field: &'static str,
    points: &[[i64; 2]],
    rows: i32,
    cols: i32,
) -> Result<(), ApiError> {
    let (rows, cols) = (i64::from(rows), i64::from(cols));
    match points.iter().find(|[x, y]| !(0..cols).contains(x) || !(0..rows).contains(y)) {
        None => Ok(()),
        Some([x, y]) => Err(ApiError::bad_request(
            field,
            format!("{field} has [{x}, {y}], outside the {cols}x{rows} grid (x from 0 to {}, y from 0 to {})", cols - 1, rows - 1),
        )),
    }
}
