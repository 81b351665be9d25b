//! Event streams written straight to their socket.
//!
//! A connection whose first request opens an event stream (the usual case: `EventSource` and
//! `curl -N` open a connection for it) is answered here rather than by hyper. A stream's
//! connection then costs a socket, its cursor and a small task: no HTTP buffers (hyper keeps two
//! of 8 KiB for every connection, which made an idle stream cost 25 KiB), and each event is one
//! `writev` of the shared frame with its chunk header.
//!
//! Only a request this module fully understands is answered here: a `GET` of the stream's path
//! over HTTP/1.x, with no body, nothing pipelined behind it, a query and headers that parse, and
//! a stream that [`sse::start`] accepts. Anything else, errors included, goes to hyper and warp's routes, which
//! answer it exactly as they would have (the same JSON errors), so the two paths cannot disagree.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::auth;
use super::params::Query;
use super::sse::{self, RESPONSE_HEADERS};
use super::stream::ClientStream;
use super::State;

/// Headers a request may have; a request with more goes to hyper.
const MAX_HEADERS: usize = 64;
/// What the stream's path is, with or without the trailing slash.
const PATHS: [&str; 2] = ["/sse/notifications", "/sse/notifications/"];

/// What a parsed request head asks for.
pub(super) enum Head {
    /// An event stream this module serves.
    Stream(StreamRequest),
    /// Anything else: hyper answers it.
    Other,
    /// More bytes are needed to tell.
    Partial,
}

/// The parts of an event-stream request that [`sse::start`] reads.
pub(super) struct StreamRequest {
    http10: bool,
    last_event_id: Option<String>,
    query: Query,
    token: Option<String>,
}

/// Reads the request head in `buf` (all the bytes received so far).
pub(super) fn parse(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        // Malformed, too many headers, HTTP/2's preface: hyper knows what to answer.
        Err(_) => return Head::Other,
    };
    if head_len != buf.len() || request.method != Some("GET") {
        return Head::Other;
    }
    let Some(target) = request.path else {
        return Head::Other;
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if !PATHS.contains(&path) {
        return Head::Other;
    }
    let Ok(query) = serde_urlencoded::from_str::<Query>(query) else {
        return Head::Other;
    };
    let mut last_event_id = None;
    let mut authorization = None;
    let mut cookie = None;
    for header in request.headers.iter() {
        // A header warp would refuse to read as text (or a body) is hyper's to answer.
        let Some(value) = text(header.value) else {
            return Head::Other;
        };
        let name = header.name;
        if name.eq_ignore_ascii_case("last-event-id") {
            last_event_id = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value);
        } else if name.eq_ignore_ascii_case("cookie") {
            cookie = cookie.or_else(|| cookie_value(value, auth::COOKIE));
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("content-length") && value.trim() != "0")
        {
            return Head::Other;
        }
    }
    let token = auth::choose_token(authorization, cookie, &query);
    Head::Stream(StreamRequest {
        http10: request.version == Some(0),
        last_event_id,
        query,
        token,
    })
}

/// A header value as text, if it is visible ASCII (what `HeaderValue::to_str` accepts).
fn text(value: &[u8]) -> Option<&str> {
    let visible = |&b: &u8| b == b'\t' || (0x20..0x7f).contains(&b);
    if value.iter().all(visible) {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie_value<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// Starts the stream the request asks for, and says whether its body is chunked (HTTP/1.1);
/// `None` if it is refused, which hyper then answers from the bytes received.
pub(super) async fn start(
    request: StreamRequest,
    state: Arc<State>,
) -> Option<(ClientStream, bool)> {
    let chunked = !request.http10;
    let stream = sse::start(request.last_event_id, request.query, request.token, state).await;
    Some((stream.ok()?, chunked))
}

/// Writes the stream to the client until either side ends it.
pub(super) async fn serve(mut socket: TcpStream, chunked: bool, mut stream: ClientStream) {
    let Some(first) = stream.next_chunk().await else {
        return;
    };
    let mut head = response_head(chunked);
    // The head and the stream's opening go out in one write.
    if chunked {
        head.extend_from_slice(format!("{:x}\r\n", first.len()).as_bytes());
        head.extend_from_slice(&first);
        head.extend_from_slice(b"\r\n");
    } else {
        head.extend_from_slice(&first);
    }
    if socket.write_all(&head).await.is_err() {
        return;
    }
    drop(head);
    loop {
        let chunk = tokio::select! {
            biased;
            chunk = stream.next_chunk() => chunk,
            () = poll_fn(|cx| poll_client_gone(&socket, cx)) => return,
        };
        let Some(chunk) = chunk else {
            // The server ends the stream (shutdown, eviction, expiry): end the body properly.
            if chunked {
                let _ = tokio::time::timeout(FINAL_WRITE, socket.write_all(b"0\r\n\r\n")).await;
            }
            return;
        };
        let written = tokio::select! {
            biased;
            written = write_chunk(&mut socket, &chunk, chunked) => written,
            // A client that stopped reading must not hold up shutdown or its own eviction.
            () = stream.closing() => return,
        };
        if written.is_err() {
            return;
        }
    }
}

/// How long the end of a stream may take to write to a client that stopped reading.
const FINAL_WRITE: Duration = Duration::from_secs(1);

/// The response head; the status line is the same for every stream.
fn response_head(chunked: bool) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(if chunked {
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
    } else {
        // HTTP/1.0 has no chunks: the body ends when the connection closes.
        b"HTTP/1.0 200 OK\r\nconnection: close\r\n"
    });
    for (name, value) in RESPONSE_HEADERS {
        head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    let date = httpdate::fmt_http_date(SystemTime::now());
    head.extend_from_slice(format!("date: {date}\r\n\r\n").as_bytes());
    head
}

/// Writes one chunk of the body: with HTTP/1.1's chunk framing, in one `writev` when the socket
/// takes it all.
async fn write_chunk(socket: &mut TcpStream, data: &Bytes, chunked: bool) -> io::Result<()> {
    let mut size = [0u8; 18];
    let size_len = chunk_size_line(data.len(), &mut size);
    let mut framed = [
        IoSlice::new(&size[..size_len]),
        IoSlice::new(data),
        IoSlice::new(b"\r\n"),
    ];
    let mut parts = if chunked {
        &mut framed[..]
    } else {
        &mut framed[1..2]
    };
    // Usually the socket takes it all at once, without waiting for it to be writable.
    loop {
        match socket.try_write_vectored(parts) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut parts, written),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
            Err(err) => return Err(err),
        }
        if parts.is_empty() {
            return Ok(());
        }
    }
}

/// Sets the kernel's send buffer for `socket` (which turns off its growing the buffer as the
/// connection goes). Without it a client that stops reading holds up to megabytes of events in
/// the kernel; with it, its stream soon waits, and catches up from the ring or the table once the
/// client reads again, which is what the rest of the design expects of slow clients.
pub(super) fn set_send_buffer(socket: &TcpStream, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: the option value is a c_int that lives for the call, passed with its size, and the
    // descriptor is the open socket of a live TcpStream.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes `len` in hex and CRLF into `out`; returns how many bytes that took.
fn chunk_size_line(len: usize, out: &mut [u8; 18]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for i in 0..digits {
        out[digits - 1 - i] = HEX[(len >> (4 * i)) & 0xf];
    }
    out[digits] = b'\r';
    out[digits + 1] = b'\n';
    digits + 2
}

/// Ready when the client has closed its side of the connection (or it failed). Anything the
/// client sends on a stream's connection is read and dropped. (A `poll_read_ready` rather than
/// `readable().await`: it costs no waiter to link and unlink each time an event wakes the task.)
fn poll_client_gone(socket: &TcpStream, cx: &mut Context<'_>) -> Poll<()> {
    let mut sink = [0u8; 64];
    loop {
        match socket.poll_read_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Ready(Ok(())) => {}
        }
        match socket.try_read(&mut sink) {
            Ok(0) => return Poll::Ready(()),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Poll::Ready(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(request: &str) -> Option<StreamRequest> {
        match parse(request.as_bytes()) {
            Head::Stream(request) => Some(request),
            _ => None,
        }
    }

    #[test]
    fn a_plain_stream_request_is_served_directly() {
        let request = stream(
            "GET /sse/notifications/?lastEventId=7&events=newBoard HTTP/1.1\r\n\
             Host: x\r\nLast-Event-ID: 9\r\nCookie: a=b; pgsse_token=tok\r\n\r\n",
        )
        .unwrap();
        assert!(!request.http10);
        assert_eq!(request.last_event_id.as_deref(), Some("9"));
        assert_eq!(request.token.as_deref(), Some("tok"));
        assert_eq!(
            request.query,
            [
                ("lastEventId".to_owned(), "7".to_owned()),
                ("events".to_owned(), "newBoard".to_owned())
            ]
        );
        let bearer = stream(
            "GET /sse/notifications HTTP/1.0\r\nAuthorization: Bearer abc\r\n\
             Cookie: pgsse_token=tok\r\n\r\n",
        )
        .unwrap();
        assert!(bearer.http10);
        assert_eq!(bearer.token.as_deref(), Some("abc"));
    }

    #[test]
    fn anything_else_goes_to_hyper() {
        for request in [
            "POST /sse/notifications/ HTTP/1.1\r\n\r\n",
            "HEAD /sse/notifications/ HTTP/1.1\r\n\r\n",
            "GET /sse/notificationsx HTTP/1.1\r\n\r\n",
            "GET /api/boards HTTP/1.1\r\n\r\n",
            "GET /sse/notifications/ HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            "GET /sse/notifications/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /sse/notifications/ HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            "GET /sse/notifications/ HTTP/1.1\r\nLast-Event-ID: \u{e9}\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GARBAGE\r\n\r\n",
        ] {
            assert!(
                matches!(parse(request.as_bytes()), Head::Other),
                "{request:?}"
            );
        }
        assert!(matches!(
            parse(b"GET /sse/notifications/ HTTP/1.1\r\nHost"),
            Head::Partial
        ));
    }

    #[test]
    fn chunk_sizes_are_lowercase_hex() {
        let mut out = [0u8; 18];
        for (len, expected) in [
            (0, "0\r\n"),
            (9, "9\r\n"),
            (255, "ff\r\n"),
            (4096, "1000\r\n"),
        ] {
            let n = chunk_size_line(len, &mut out);
            assert_eq!(std::str::from_utf8(&out[..n]).unwrap(), expected);
        }
    }
}
