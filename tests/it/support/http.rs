//! A small HTTP/1.1 client over a raw socket, so tests see exactly the bytes a client would: the
//! status, the headers, and the event stream as written.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Every wait in the tests for something that should happen (an answer, an event, a process
/// getting ready, a condition polled for) is bounded by this. It bounds a hang, not the speed:
/// a test goes on as soon as what it waits for happens, so it is long enough for a machine whose
/// cores are all busy with other work.
pub const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request and reads the whole response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let exchange = async {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        socket
            .write_all(head.as_bytes())
            .await
            .expect("write request");
        if let Some(body) = body {
            socket.write_all(body).await.expect("write body");
        }
        let mut reader = BufReader::new(socket);
        let (status, headers) = read_head(&mut reader).await.expect("a response head");
        let chunked = headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
        let mut body = Vec::new();
        if chunked {
            while let Some(chunk) = read_chunk(&mut reader).await {
                body.extend_from_slice(&chunk);
            }
        } else {
            reader.read_to_end(&mut body).await.expect("read body");
        }
        Response {
            status,
            headers,
            body,
        }
    };
    timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no complete response within {WAIT:?}"))
}

pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], None).await
}

pub async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Response {
    let body = serde_json::to_vec(body).unwrap();
    let headers = [("Content-Type", "application/json")];
    request(addr, "POST", path, &headers, Some(&body)).await
}

/// Reads the status line and headers, which must arrive within [`WAIT`].
pub async fn expect_head(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    timeout(WAIT, read_head(reader))
        .await
        .expect("a response head in time")
        .expect("a response head before the connection closes")
}

/// Reads the status line and headers; `None` if the connection closes first.
pub async fn read_head(reader: &mut BufReader<TcpStream>) -> Option<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Some((status, headers));
        }
        let (name, value) = line.split_once(':').expect("header has a colon");
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
}

/// Reads one chunk of a chunked body; `None` at the end of the body or of the connection.
pub async fn read_chunk(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    match next_chunk(reader).await {
        Chunk::Data(chunk) => Some(chunk),
        Chunk::Last | Chunk::Closed => None,
    }
}

/// What reading a chunked body gave.
pub enum Chunk {
    Data(Vec<u8>),
    /// The zero-size chunk that ends the body properly.
    Last,
    /// The connection closed (or failed) without it.
    Closed,
}

pub async fn next_chunk(reader: &mut BufReader<TcpStream>) -> Chunk {
    let mut line = String::new();
    if !matches!(reader.read_line(&mut line).await, Ok(1..)) {
        return Chunk::Closed;
    }
    let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
    if size == 0 {
        return Chunk::Last;
    }
    let mut chunk = vec![0; size + 2];
    if reader.read_exact(&mut chunk).await.is_err() {
        return Chunk::Closed;
    }
    assert_eq!(&chunk[size..], b"\r\n", "chunk ends with CRLF");
    chunk.truncate(size);
    Chunk::Data(chunk)
}
