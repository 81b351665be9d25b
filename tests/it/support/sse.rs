//! An SSE client that reads the stream the way a browser's `EventSource` does, and keeps every
//! byte it received for assertions on the framing.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::http::{next_chunk, read_head, Chunk, WAIT};

#[derive(Clone, Debug, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn id(&self) -> i64 {
        let id = self.id.as_deref().expect("the event has an id");
        id.parse()
            .unwrap_or_else(|_| panic!("id {id:?} is not a number"))
    }

    /// The event's kind: its name, or in an enveloped stream (`?envelope=1`) the `kind` its
    /// data carries.
    pub fn kind(&self) -> String {
        if self.event != "message" {
            return self.event.clone();
        }
        let kind = serde_json::from_str::<Value>(&self.data)
            .ok()
            .and_then(|data| data.get("kind").and_then(Value::as_str).map(str::to_owned));
        kind.unwrap_or_else(|| self.event.clone())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {:?}", self.data))
    }
}

pub struct SseClient {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    /// The body as received, chunk encoding removed.
    pub raw: Vec<u8>,
    /// Where the first block not yet parsed starts in `raw`.
    parsed: usize,
    pub comments: Vec<String>,
    pub retry: Option<u64>,
    /// What a browser would send as Last-Event-ID on reconnect.
    pub last_event_id: Option<String>,
    /// The `connection` event the stream opened with.
    pub connection: Option<SseEvent>,
    pub ended: bool,
    /// Whether the body ended with HTTP/1.1's last chunk, rather than the connection just closing.
    pub ended_cleanly: bool,
}

impl SseClient {
    /// Opens a stream. On a 200 it also reads the first block, so when this returns the server
    /// has subscribed the client and every later event will reach it.
    /// The client's end of the connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.reader
            .get_ref()
            .local_addr()
            .expect("a connected socket")
    }

    pub async fn connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseClient {
        let open = SseClient::try_connect(addr, path, headers);
        match timeout(WAIT, open).await {
            Ok(Some(client)) => client,
            _ => panic!("GET {path}: no stream within {WAIT:?}"),
        }
    }

    /// Like [`SseClient::connect`], but `None` when the server cannot be reached or closes the
    /// connection before answering.
    pub async fn try_connect(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<SseClient> {
        let socket = TcpStream::connect(addr).await.ok()?;
        SseClient::open_on(BufReader::new(socket), addr, path, headers).await
    }

    /// Opens a stream on a connection that has first been used for an ordinary `GET before`
    /// (kept alive, as browsers do), after reading that whole response.
    pub async fn connect_after(addr: SocketAddr, before: &str, path: &str) -> SseClient {
        let open = async {
            let mut socket = TcpStream::connect(addr).await.ok()?;
            let request = format!("GET {before} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            socket.write_all(request.as_bytes()).await.ok()?;
            let mut reader = BufReader::new(socket);
            let (status, headers) = read_head(&mut reader).await?;
            assert_eq!(status, 200, "GET {before}");
            let length = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse::<usize>().expect("a length"))
                .expect("GET {before} answers with a content-length");
            let mut body = vec![0; length];
            tokio::io::AsyncReadExt::read_exact(&mut reader, &mut body)
                .await
                .ok()?;
            SseClient::open_on(reader, addr, path, &[]).await
        };
        match timeout(WAIT, open).await {
            Ok(Some(client)) => client,
            _ => panic!("GET {path} after GET {before}: no stream within {WAIT:?}"),
        }
    }

    async fn open_on(
        mut reader: BufReader<TcpStream>,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<SseClient> {
        let mut head =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        reader.get_mut().write_all(head.as_bytes()).await.ok()?;
        let (status, headers) = read_head(&mut reader).await?;
        let mut client = SseClient {
            status,
            headers,
            reader,
            raw: Vec::new(),
            parsed: 0,
            comments: Vec::new(),
            retry: None,
            last_event_id: None,
            connection: None,
            ended: false,
            ended_cleanly: false,
        };
        if client.status == 200 {
            let first = client.next_block(WAIT).await;
            assert!(
                first.is_none(),
                "the stream starts with an event instead of its preamble: {first:?}"
            );
            client.connection = client.next_block(WAIT).await;
            if client.ended {
                return None;
            }
            let kind = client.connection.as_ref().map(SseEvent::kind);
            assert_eq!(
                kind.as_deref(),
                Some("connection"),
                "the second block is the connection event"
            );
        } else {
            client.read_error_body().await;
        }
        Some(client)
    }

    /// Reads the rest of a non-stream answer (an error) into `raw`.
    async fn read_error_body(&mut self) {
        let length: usize = self
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if tokio::io::AsyncReadExt::read_exact(&mut self.reader, &mut body)
            .await
            .is_ok()
        {
            self.raw = body;
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// The next event; panics if none arrives in time.
    pub async fn next_event(&mut self) -> SseEvent {
        match self.event_within(WAIT).await {
            Some(event) => event,
            None => panic!("no event within {WAIT:?}; stream so far: {:?}", self.text()),
        }
    }

    /// The next event, or `None` if the stream ends or `wait` passes first.
    pub async fn event_within(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || self.ended {
                return None;
            }
            if let Some(event) = self.next_block(left).await {
                return Some(event);
            }
        }
    }

    /// Reads until the server ends the stream; true if it did within `wait`.
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.ended {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            self.next_block(left).await;
        }
        true
    }

    /// Parses the next block (up to a blank line). Returns the event it dispatches, if any;
    /// comments, `retry` and id-only blocks are recorded as a browser would.
    async fn next_block(&mut self, wait: Duration) -> Option<SseEvent> {
        let end = loop {
            if let Some(at) = find(&self.raw[self.parsed..], b"\n\n") {
                break self.parsed + at;
            }
            match timeout(wait, next_chunk(&mut self.reader)).await {
                Ok(Chunk::Data(chunk)) => self.raw.extend_from_slice(&chunk),
                Ok(end) => {
                    self.ended = true;
                    self.ended_cleanly = matches!(end, Chunk::Last);
                    return None;
                }
                Err(_) => return None,
            }
        };
        let block = String::from_utf8(self.raw[self.parsed..end].to_vec()).expect("UTF-8 stream");
        self.parsed = end + 2;
        self.dispatch(&block)
    }

    fn dispatch(&mut self, block: &str) -> Option<SseEvent> {
        let (mut id, mut event, mut data) = (None, String::new(), None::<String>);
        for line in block.split('\n') {
            if let Some(comment) = line.strip_prefix(':') {
                self.comments.push(comment.trim_start().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.to_owned()),
                "event" => event = value.to_owned(),
                "data" => match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_owned()),
                },
                "retry" => self.retry = value.parse().ok(),
                other => panic!("unexpected field {other:?} in block {block:?}"),
            }
        }
        if id.is_some() {
            self.last_event_id = id.clone();
        }
        let data = data?;
        Some(SseEvent {
            id,
            event: if event.is_empty() {
                "message".into()
            } else {
                event
            },
            data,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
