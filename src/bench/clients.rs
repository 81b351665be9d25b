//! Many SSE clients, one task each. A client connects (from its loopback source address),
//! sends `GET /sse/notifications/`, reads the stream's first block (from then on the gateway
//! has subscribed it), then reads events until told to stop, recording each in its [`Tally`].
//!
//! Stalled clients do the same with a small receive buffer, but read nothing more after the
//! first block until [`Clients::resume`]: like a phone on a bad network, their socket fills and
//! the gateway's writes to them cannot go on.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch, Semaphore};
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
}

/// What every client task shares.
struct Shared {
    spec: Spec,
    opening: Semaphore,
    /// New rows received, over all clients.
    delivered: AtomicU64,
    /// Becomes true when stalled clients are to read again.
    resumed: watch::Receiver<bool>,
}

pub struct Clients {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<Option<Tally>>>,
    /// One per client: tells it to stop.
    stops: Vec<oneshot::Sender<()>>,
    held: usize,
    failures: BTreeMap<String, usize>,
    resume: watch::Sender<bool>,
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
            }),
            resume,
            tasks: Vec::new(),
            stops: Vec::new(),
            held: 0,
            failures: BTreeMap::new(),
        }
    }

    /// Opens `count` more clients and waits until each is streaming or has failed; returns how
    /// many are streaming.
    pub async fn add(&mut self, count: usize) -> usize {
        let spec = &self.shared.spec;
        let mut outcomes = Vec::with_capacity(count);
        for _ in 0..count {
            let index = self.tasks.len();
            let source = (spec.sources > 0)
                .then(|| source_address(spec.source_offset + index % spec.sources));
            let (opened, outcome) = oneshot::channel();
            let (stop, stopped) = oneshot::channel();
            self.stops.push(stop);
            let task = tokio::spawn(client(self.shared.clone(), source, opened, stopped));
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
    opened: oneshot::Sender<Result<(), String>>,
    stop: oneshot::Receiver<()>,
) -> Option<Tally> {
    let mut reader = Reader::new(Tally::new(shared.spec.tag, shared.spec.rows));
    let permit = shared.opening.acquire().await.ok()?;
    let stream = match timeout(OPEN_WAIT, open(&shared, source, &mut reader)).await {
        Ok(Ok(stream)) => stream,
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
            read = read_with(&stream, |bytes| reader.take(bytes, &shared.delivered)) => {
                if !matches!(read, Ok(Ok(true))) {
                    reader.tally.ended = true;
                    break;
                }
            }
        }
    }
    Some(reader.tally)
}

/// Connects, asks for the stream and reads its head and first block.
async fn open(
    shared: &Shared,
    source: Option<IpAddr>,
    reader: &mut Reader,
) -> Result<TcpStream, String> {
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
    let mut streaming = reader.take(&head[body_start..], &shared.delivered)?;
    while streaming && reader.blocks == 0 {
        streaming = read_with(&stream, |bytes| reader.take(bytes, &shared.delivered))
            .await
            .map_err(|e| format!("read: {e}"))??;
    }
    if reader.blocks == 0 {
        return Err("the stream ended before its first block".into());
    }
    Ok(stream)
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
    dechunk: Dechunk,
    /// Body bytes not yet making a whole block.
    body: Vec<u8>,
    /// Whole blocks read, events or not.
    blocks: u64,
    tally: Tally,
}

impl Reader {
    fn new(tally: Tally) -> Reader {
        Reader {
            dechunk: Dechunk::default(),
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
        let ended = self.dechunk.feed(bytes, &mut self.body)?;
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
