//! Many SSE clients, one task each. A client connects (from its loopback source address),
//! sends `GET /sse/notifications/`, reads the stream's first block (from then on the gateway
//! has subscribed it), then reads events until told to stop, recording each in its [`Tally`].
//!
//! Stalled clients do the same with a small receive buffer, but read nothing more after the
//! first block until [`Clients::resume`]: like a phone on a bad network, their socket fills and
//! the gateway's writes to them cannot go on.
//!
//! Over HTTP/2 (with prior knowledge, as a browser's streams share one connection over HTTPS)
//! clients share connections, a given number of streams on each, with a browser's flow-control
//! windows. Stalled ones stop reading their stream, and their connections stop reading the
//! socket once every stalled client has opened.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch, OnceCell, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::net::{connect_with, read_with, source_address, write_all};
use super::sse::{event_fields, take_blocks, Dechunk};
use super::tally::{now_us, Tally};

/// Clients opening their stream at once: more would overflow the server's accept backlog and
/// cost seconds of SYN retransmits.
const OPENING_AT_ONCE: usize = 256;
/// How long a client may take to connect and read the stream's first block.
pub const OPEN_WAIT: Duration = Duration::from_secs(10);
pub const STREAM_PATH: &str = "/sse/notifications/";
/// A stalled client's receive buffer (the kernel doubles it for its own bookkeeping).
pub const STALLED_RECEIVE_BUFFER: u32 = 4096;
/// The flow-control windows Chromium offers over HTTP/2: 6 MiB per stream, 15 MiB per
/// connection.
const HTTP2_STREAM_WINDOW: u32 = 6 * 1024 * 1024;
const HTTP2_CONNECTION_WINDOW: u32 = 15 * 1024 * 1024;

/// What the clients connect to and expect.
#[derive(Clone, Debug)]
pub struct Spec {
    pub gateway: SocketAddr,
    /// Loopback source addresses to spread over; 0 connects from the default one.
    pub sources: usize,
    /// The first source address, counted from 127.0.0.2.
    pub source_offset: usize,
    /// Rows the run will write.
    pub rows: u64,
    /// The run's tag.
    pub tag: u32,
    /// Whether the clients stall: they read nothing after their first block until resumed.
    pub stalled: bool,
    /// Whether each client asks for the stream on a connection that served `GET /healthz`
    /// first, as a browser's `EventSource` reuses the connection that served the page.
    pub kept_alive: bool,
    /// Over HTTP/2: this many streams on each connection.
    pub http2: Option<usize>,
}

/// One HTTP/2 connection, opened by the first of its clients.
type Connection = Arc<OnceCell<Result<h2::client::SendRequest<Bytes>, String>>>;

/// What every client task shares.
struct Shared {
    spec: Spec,
    opening: Semaphore,
    /// New rows received, over all clients.
    delivered: AtomicU64,
    /// Becomes true when stalled clients are to read again.
    resumed: watch::Receiver<bool>,
    /// Set once every stalled client has opened: their HTTP/2 connections stop reading.
    stalling: AtomicBool,
}

pub struct Clients {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<Option<Tally>>>,
    /// One per client: tells it to stop.
    stops: Vec<oneshot::Sender<()>>,
    held: usize,
    failures: BTreeMap<String, usize>,
    resume: watch::Sender<bool>,
    /// Over HTTP/2, the connections so far.
    connections: Vec<Connection>,
}

impl Clients {
    pub fn new(spec: Spec) -> Clients {
        let (resume, resumed) = watch::channel(false);
        Clients {
            shared: Arc::new(Shared {
                spec,
                opening: Semaphore::new(OPENING_AT_ONCE),
                delivered: AtomicU64::new(0),
                resumed,
                stalling: AtomicBool::new(false),
            }),
            resume,
            tasks: Vec::new(),
            stops: Vec::new(),
            held: 0,
            failures: BTreeMap::new(),
            connections: Vec::new(),
        }
    }

    /// Opens `count` more clients and waits until each is streaming or has failed; returns how
    /// many are streaming.
    pub async fn add(&mut self, count: usize) -> usize {
        let spec = &self.shared.spec;
        let mut outcomes = Vec::with_capacity(count);
        for _ in 0..count {
            let index = self.tasks.len();
            // Over HTTP/2 each connection, not each stream, has a source address.
            let (connection, place) = match spec.http2 {
                Some(streams) => {
                    if index.is_multiple_of(streams.max(1)) {
                        self.connections.push(Connection::default());
                    }
                    let connection = self.connections.last().cloned();
                    (connection, self.connections.len() - 1)
                }
                None => (None, index),
            };
            let source = (spec.sources > 0)
                .then(|| source_address(spec.source_offset + place % spec.sources));
            let (opened, outcome) = oneshot::channel();
            let (stop, stopped) = oneshot::channel();
            self.stops.push(stop);
            let task = tokio::spawn(client(
                self.shared.clone(),
                source,
                connection,
                opened,
                stopped,
            ));
            self.tasks.push(task);
            outcomes.push(outcome);
        }
        let mut streaming = 0;
        for outcome in outcomes {
            match outcome.await {
                Ok(Ok(())) => streaming += 1,
                Ok(Err(reason)) => *self.failures.entry(reason).or_default() += 1,
                Err(_) => {
                    *self
                        .failures
                        .entry("the client panicked".into())
                        .or_default() += 1
                }
            }
        }
        self.held += streaming;
        streaming
    }

    /// Clients streaming (their stream may have ended since).
    pub fn held(&self) -> usize {
        self.held
    }

    /// Why clients failed to open, with counts.
    pub fn failures(&self) -> Vec<(String, usize)> {
        self.failures.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Stalled clients' HTTP/2 connections stop reading their sockets (call once every client
    /// has opened). Stalled clients over HTTP/1 stop on their own after their first block.
    pub fn stall(&self) {
        self.shared.stalling.store(true, Relaxed);
    }

    /// Lets stalled clients read again.
    pub fn resume(&self) {
        self.resume.send_replace(true);
    }

    /// New rows received so far, over all clients.
    pub fn delivered(&self) -> u64 {
        self.shared.delivered.load(Relaxed)
    }

    /// Stops every client and closes its connection; the tallies of those that were streaming.
    pub async fn finish(self) -> Vec<Tally> {
        for stop in self.stops {
            let _ = stop.send(());
        }
        let mut tallies = Vec::with_capacity(self.held);
        for task in self.tasks {
            if let Some(tally) = task.await.expect("a client task does not panic") {
                tallies.push(tally);
            }
        }
        tallies
    }
}

/// One client's life; `None` if it never got to stream.
async fn client(
    shared: Arc<Shared>,
    source: Option<IpAddr>,
    connection: Option<Connection>,
    opened: oneshot::Sender<Result<(), String>>,
    stop: oneshot::Receiver<()>,
) -> Option<Tally> {
    let mut reader = Reader::new(Tally::new(shared.spec.tag, shared.spec.rows));
    let permit = shared.opening.acquire().await.ok()?;
    let opening = async {
        match &connection {
            Some(connection) => open_http2(&shared, source, connection, &mut reader).await,
            None => open(&shared, source, &mut reader).await,
        }
    };
    let mut body = match timeout(OPEN_WAIT, opening).await {
        Ok(Ok(body)) => body,
        Ok(Err(reason)) => {
            let _ = opened.send(Err(reason));
            return None;
        }
        Err(_) => {
            let reason = format!("no first block within {} s", OPEN_WAIT.as_secs());
            let _ = opened.send(Err(reason));
            return None;
        }
    };
    drop(permit);
    let _ = opened.send(Ok(()));
    // A stop signal of its own: polling it costs no lock shared with the other clients.
    let mut stop = stop;
    if shared.spec.stalled {
        let mut resumed = shared.resumed.clone();
        tokio::select! {
            _ = &mut stop => return Some(reader.tally),
            _ = resumed.wait_for(|resumed| *resumed) => {}
        }
    }
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            read = body.read(&mut reader, &shared.delivered) => {
                if !matches!(read, Ok(true)) {
                    reader.tally.ended = true;
                    break;
                }
            }
        }
    }
    Some(reader.tally)
}

/// A stream's body: the socket of an HTTP/1.1 response, or an HTTP/2 stream.
enum Body {
    Http1(TcpStream),
    Http2(h2::RecvStream),
}

impl Body {
    /// Reads what has come and hands it to `reader`; `Ok(false)` once the stream has ended.
    async fn read(&mut self, reader: &mut Reader, delivered: &AtomicU64) -> Result<bool, String> {
        match self {
            Body::Http1(stream) => read_with(stream, |bytes| reader.take(bytes, delivered))
                .await
                .map_err(|e| format!("read: {e}"))?,
            Body::Http2(stream) => match stream.data().await {
                None => Ok(false),
                Some(Err(e)) => Err(format!("read: {e}")),
                Some(Ok(bytes)) if bytes.is_empty() => Ok(true),
                Some(Ok(bytes)) => {
                    // Read, so the gateway may send as much again, as a browser does.
                    let _ = stream.flow_control().release_capacity(bytes.len());
                    reader.take(&bytes, delivered)
                }
            },
        }
    }
}

/// Connects, asks for the stream and reads its head and first block.
async fn open(
    shared: &Shared,
    source: Option<IpAddr>,
    reader: &mut Reader,
) -> Result<Body, String> {
    let gateway = shared.spec.gateway;
    let receive_buffer = shared.spec.stalled.then_some(STALLED_RECEIVE_BUFFER);
    let stream = connect_with(source, receive_buffer, gateway)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if shared.spec.kept_alive {
        request_first(&stream, gateway).await?;
    }
    let request = format!(
        "GET {STREAM_PATH} HTTP/1.1\r\nHost: {gateway}\r\nAccept: text/event-stream\r\n\r\n"
    );
    write_all(&stream, request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut head = Vec::new();
    let body_start = loop {
        let n = read_with(&stream, |bytes| {
            head.extend_from_slice(bytes);
            bytes.len()
        })
        .await
        .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed before answering".into());
        }
        if let Some(end) = memchr::memmem::find(&head, b"\r\n\r\n") {
            break end + 4;
        }
    };
    check_head(&head[..body_start])?;
    reader.dechunk = Some(Dechunk::default());
    let streaming = reader.take(&head[body_start..], &shared.delivered)?;
    first_block(Body::Http1(stream), streaming, reader, &shared.delivered).await
}

/// Reads until the stream's first block.
async fn first_block(
    mut body: Body,
    mut streaming: bool,
    reader: &mut Reader,
    delivered: &AtomicU64,
) -> Result<Body, String> {
    while streaming && reader.blocks == 0 {
        streaming = body.read(reader, delivered).await?;
    }
    if reader.blocks == 0 {
        return Err("the stream ended before its first block".into());
    }
    Ok(body)
}

/// Opens a stream on the client's HTTP/2 connection (connecting first if it is the first of
/// them) and reads its first block.
async fn open_http2(
    shared: &Arc<Shared>,
    source: Option<IpAddr>,
    connection: &Connection,
    reader: &mut Reader,
) -> Result<Body, String> {
    let gateway = shared.spec.gateway;
    let send = connection
        .get_or_init(|| connect_http2(shared, source))
        .await
        .clone()?;
    let mut send = send.ready().await.map_err(|e| format!("HTTP/2: {e}"))?;
    let request = http::Request::get(format!("http://{gateway}{STREAM_PATH}"))
        .header("accept", "text/event-stream")
        .body(())
        .map_err(|e| e.to_string())?;
    let (response, _) = send
        .send_request(request, true)
        .map_err(|e| format!("send: {e}"))?;
    let response = response.await.map_err(|e| format!("HTTP/2: {e}"))?;
    if response.status() != 200 {
        return Err(format!("status {}", response.status().as_u16()));
    }
    let body = Body::Http2(response.into_body());
    first_block(body, true, reader, &shared.delivered).await
}

/// One HTTP/2 connection with a browser's windows, driven by a task of its own.
async fn connect_http2(
    shared: &Arc<Shared>,
    source: Option<IpAddr>,
) -> Result<h2::client::SendRequest<Bytes>, String> {
    let receive_buffer = shared.spec.stalled.then_some(STALLED_RECEIVE_BUFFER);
    let stream = connect_with(source, receive_buffer, shared.spec.gateway)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let io = Pausable {
        stream,
        pause: shared.spec.stalled.then(|| (shared.clone(), None)),
    };
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
        .handshake(io)
        .await
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(send)
}

/// An HTTP/2 client connection's socket; a stalled client's stops reading while they stall.
struct Pausable {
    stream: TcpStream,
    /// A stalled client's: the clients' shared state, and once stalling, what resolves when
    /// they are to read again.
    pause: Option<(Arc<Shared>, Option<Waiting>)>,
}

type Waiting = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

impl AsyncRead for Pausable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some((shared, waiting)) = &mut this.pause {
            if shared.stalling.load(Relaxed) {
                let waiting = waiting.get_or_insert_with(|| {
                    let mut resumed = shared.resumed.clone();
                    Box::pin(async move {
                        let _ = resumed.wait_for(|resumed| *resumed).await;
                    })
                });
                ready!(waiting.as_mut().poll(cx));
                this.pause = None;
            }
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pausable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// `GET /healthz` and its whole answer (a `200` with a `Content-Length`), leaving the connection
/// open for the stream.
async fn request_first(stream: &TcpStream, gateway: SocketAddr) -> Result<(), String> {
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {gateway}\r\n\r\n");
    write_all(stream, request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    loop {
        let n = read_with(stream, |bytes| {
            answer.extend_from_slice(bytes);
            bytes.len()
        })
        .await
        .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed after GET /healthz".into());
        }
        let Some(end) = memchr::memmem::find(&answer, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or("GET /healthz: no content-length")?;
        if answer.len() >= end + 4 + length {
            return Ok(());
        }
    }
}

/// A `200` with a chunked body, or the reason it is not.
fn check_head(head: &[u8]) -> Result<(), String> {
    let head = String::from_utf8_lossy(head);
    let status = head.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("status {status}"));
    }
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err("the stream is not chunked".into());
    }
    Ok(())
}

/// A client's parsing state and record.
struct Reader {
    /// Over HTTP/1.1: the chunked framing to take off.
    dechunk: Option<Dechunk>,
    /// Body bytes not yet making a whole block.
    body: Vec<u8>,
    /// Whole blocks read, events or not.
    blocks: u64,
    tally: Tally,
}

impl Reader {
    fn new(tally: Tally) -> Reader {
        Reader {
            dechunk: None,
            body: Vec::new(),
            blocks: 0,
            tally,
        }
    }

    /// Takes the bytes of one read; `Ok(false)` once the stream has ended.
    fn take(&mut self, bytes: &[u8], delivered: &AtomicU64) -> Result<bool, String> {
        if bytes.is_empty() {
            return Ok(false);
        }
        let now = now_us();
        let ended = match &mut self.dechunk {
            Some(dechunk) => dechunk.feed(bytes, &mut self.body)?,
            None => {
                self.body.extend_from_slice(bytes);
                false
            }
        };
        let (tally, blocks) = (&mut self.tally, &mut self.blocks);
        let mut new = 0;
        take_blocks(&mut self.body, |block| {
            *blocks += 1;
            let (id, name) = event_fields(block);
            new += u64::from(tally.record(id, name, now));
        });
        if new > 0 {
            delivered.fetch_add(new, Relaxed);
        }
        Ok(!ended)
    }
}
