//! Reading an SSE response as it arrives: the HTTP/1.1 chunked framing taken off, the body cut
//! into blocks at blank lines, and the two fields the benchmark needs taken from each event (its
//! id, and the board name inside its `data:` JSON), without building a JSON value per event.

use std::sync::LazyLock;

use memchr::memmem::{self, Finder};

static BLOCK_END: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\n"));
static BOARD_NAME: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"board_name\""));

/// Takes HTTP/1.1 chunked framing off a response body, fed in pieces as they are read.
#[derive(Default)]
pub struct Dechunk {
    state: State,
    /// A chunk-size line split across reads.
    line: Vec<u8>,
}

#[derive(Default, Clone, Copy)]
enum State {
    #[default]
    Size,
    Data(usize),
    /// The CRLF after a chunk's data; counts the bytes of it still to skip.
    DataEnd(u8),
    Done,
}

impl Dechunk {
    /// Appends the body bytes in `input` to `body`. Returns whether the body has ended (the last
    /// chunk came).
    pub fn feed(&mut self, mut input: &[u8], body: &mut Vec<u8>) -> Result<bool, String> {
        while !input.is_empty() {
            match self.state {
                State::Size => {
                    let Some(end) = memchr::memchr(b'\n', input) else {
                        self.line.extend_from_slice(input);
                        return Ok(false);
                    };
                    self.line.extend_from_slice(&input[..end]);
                    input = &input[end + 1..];
                    let size = chunk_size(&self.line)?;
                    self.line.clear();
                    self.state = if size == 0 {
                        State::Done
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    let n = left.min(input.len());
                    body.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = match left - n {
                        0 => State::DataEnd(2),
                        left => State::Data(left),
                    };
                }
                State::DataEnd(left) => {
                    input = &input[1..];
                    self.state = match left {
                        1 => State::Size,
                        _ => State::DataEnd(left - 1),
                    };
                }
                State::Done => return Ok(true),
            }
        }
        Ok(matches!(self.state, State::Done))
    }
}

fn chunk_size(line: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(line).map_err(|_| "a chunk size is not text".to_owned())?;
    let hex = text.trim_end_matches('\r').split(';').next().unwrap_or("");
    usize::from_str_radix(hex.trim(), 16).map_err(|_| format!("bad chunk size {text:?}"))
}

/// Calls `each` with every complete block (the text before a blank line) in `body`, then removes
/// them from `body`, leaving any incomplete block for the next call.
pub fn take_blocks(body: &mut Vec<u8>, mut each: impl FnMut(&[u8])) {
    let mut start = 0;
    while let Some(at) = BLOCK_END.find(&body[start..]) {
        each(&body[start..start + at]);
        start += at + 2;
    }
    if start == body.len() {
        body.clear();
    } else if start > 0 {
        body.drain(..start);
    }
}

/// An event's id and the `board_name` in its data, if it has them; neither for a block without
/// data (a comment, or a position such as the stream's opening `id:`), which is not an event.
pub fn event_fields(block: &[u8]) -> (Option<i64>, Option<&str>) {
    let mut id = None;
    let mut name = None;
    let mut data = false;
    for line in block.split(|b| *b == b'\n') {
        // A field's value may follow its colon with a space or without.
        let field = |name: &[u8]| {
            let value = line.strip_prefix(name)?.strip_prefix(b":")?;
            Some(value.strip_prefix(b" ").unwrap_or(value))
        };
        if let Some(value) = field(b"id") {
            id = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        } else if let Some(value) = field(b"data") {
            data = true;
            name = board_name(value);
        }
    }
    if data {
        (id, name)
    } else {
        (None, None)
    }
}

/// The `board_name` in a JSON object's text, found by its key: `"board_name"`, optional
/// spaces, `:`, optional spaces, then a string without escapes. Good for the names the
/// benchmark writes, which never need escaping; works on compact JSON and on PostgreSQL's.
pub fn board_name(json: &[u8]) -> Option<&str> {
    let at = BOARD_NAME.find(json)? + b"\"board_name\"".len();
    string_value(&json[at..])
}

/// `: "value"` (spaces allowed around the colon) at the start of `rest`: the value, if it has no
/// escapes.
fn string_value(rest: &[u8]) -> Option<&str> {
    let rest = skip_spaces(rest).strip_prefix(b":")?;
    let rest = skip_spaces(rest).strip_prefix(b"\"")?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    if rest[end] != b'"' {
        return None;
    }
    std::str::from_utf8(&rest[..end]).ok()
}

/// The value of a whole-number field in a JSON object's text, found by its key like
/// [`board_name`].
pub fn json_int_field(json: &[u8], key: &[u8]) -> Option<i64> {
    let mut quoted = Vec::with_capacity(key.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(key);
    quoted.push(b'"');
    let at = memmem::find(json, &quoted)? + quoted.len();
    let rest = skip_spaces(skip_spaces(&json[at..]).strip_prefix(b":")?);
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'-'))
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

fn skip_spaces(bytes: &[u8]) -> &[u8] {
    let n = bytes.iter().take_while(|b| **b == b' ').count();
    &bytes[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_framing_comes_off_however_the_bytes_are_split() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut dechunk = Dechunk::default();
            let mut body = Vec::new();
            dechunk.feed(&wire[..split], &mut body).unwrap();
            assert!(dechunk.feed(&wire[split..], &mut body).unwrap());
            assert_eq!(body, b"hello, world", "split at {split}");
        }
    }

    #[test]
    fn blocks_are_taken_whole_and_a_partial_one_waits() {
        let mut body = b"retry: 2000\n: open\n\nid: 1\ndata: x\n\nid: 2\nda".to_vec();
        let mut blocks = Vec::new();
        take_blocks(&mut body, |b| blocks.push(b.to_vec()));
        assert_eq!(blocks, [&b"retry: 2000\n: open"[..], b"id: 1\ndata: x"]);
        assert_eq!(body, b"id: 2\nda");
    }

    #[test]
    fn an_events_id_and_board_name_are_found_in_compact_and_spaced_json() {
        let block = b"id: 42\nevent: newBoard\ndata: {\"board_id\":3,\"board_name\":\"b-1-2\"}";
        assert_eq!(event_fields(block), (Some(42), Some("b-1-2")));
        let pg = br#"{"id" : 7, "kind" : "newBoard", "data" : {"board_name": "n"}}"#;
        assert_eq!(board_name(pg), Some("n"));
        assert_eq!(json_int_field(pg, b"id"), Some(7));
        assert_eq!(event_fields(b": keep-alive"), (None, None));
        assert_eq!(event_fields(b"retry: 2000\nid: 41\n: open"), (None, None));
        let warp = b"event:newBoard\ndata:{\"board_id\":3,\"board_name\":\"b-1-2\"}\nid:42";
        assert_eq!(event_fields(warp), (Some(42), Some("b-1-2")));
    }
}
