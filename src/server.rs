//! The transport: accepting connections and serving each with hyper and warp's routes.
//!
//! At most `MAX_CONNECTIONS` connections are served at once. Beyond that a few more are accepted
//! into a small reserve, so that health checks, metrics and the API still get answers when the
//! gateway is full of streams: the reserve's routes refuse a stream request at once with a `503`
//! and a `Retry-After` (a load balancer can send it to another instance, a browser's page
//! retries), and answer anything else over one HTTP/1 request. Only when the reserve is in use
//! too do new connections wait in the listen backlog.
//!
//! Every wait for a client has a deadline: its request head (`HEADER_READ_TIMEOUT_SECS`, from
//! its first byte or from the end of its previous request), its body (`BODY_READ_TIMEOUT_SECS`,
//! in the routes), and any time at all without a byte moving either way (`IDLE_TIMEOUT_SECS`).
//! On shutdown, streams and requests have `SHUTDOWN_GRACE_SECS` to finish; then what is left is
//! closed.
//!
//! Invariants: every connection holds its slot until its task ends.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use warp::reply::Response;

use crate::gate::Gated;
use crate::http::{self, State};
use crate::shutdown::{self, Shutdown};

/// Connections accepted beyond the cap, for anything but streams. They come out of the file
/// descriptors the default cap leaves free.
pub const RESERVE: usize = 16;
/// Pause after an accept error such as running out of file descriptors, which would otherwise
/// repeat at once.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// hyper's read and write buffers of an HTTP/1 connection grow to at most this: the largest
/// request head, and the output a connection holds beyond its socket's send buffer.
const MAX_BUFFER: usize = 64 * 1024;

/// How connections are served.
pub struct Limits {
    /// Connections served at once (`MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// The kernel send buffer of every connection's socket; `None` leaves the kernel's sizing.
    pub send_buffer: Option<usize>,
    /// How long a client may take to send a request head.
    pub header_timeout: Duration,
    /// A connection with no byte moving either way for this long is closed.
    pub idle_timeout: Duration,
    /// After shutdown, how long connections have to finish before they are closed.
    pub shutdown_grace: Duration,
}

/// Serves connections from `tcp` until `stop` completes; then stops accepting, calls `stopping`
/// (which ends the streams), and returns once hyper's connections have finished.
pub async fn serve(
    tcp: TcpListener,
    state: Arc<State>,
    limits: Limits,
    stop: impl Future<Output = ()>,
    stopping: impl FnOnce(),
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(RESERVE));
    let metrics = state.metrics.clone();
    metrics
        .connections_max
        .store(limits.max_connections as u64, Relaxed);
    let served = hyper(state.clone(), &limits, false);
    let reserved = hyper(state.clone(), &limits, true);
    // Fired once the grace after shutdown is over: every connection still open then is closed.
    // Each connection holds a handle until it ends.
    let (cut, _) = shutdown::channel();
    let mut stop = std::pin::pin!(stop);
    let mut full = false;
    loop {
        // A connection is accepted only while it has somewhere to go: a slot, or else the reserve.
        let mut slot = match slots.clone().try_acquire_owned() {
            Ok(permit) => Slot::served(permit),
            Err(_) => match reserve.clone().try_acquire_owned() {
                Ok(permit) => Slot::reserve(permit),
                Err(_) => tokio::select! {
                    permit = slots.clone().acquire_owned() => Slot::served(permit.expect(OPEN)),
                    permit = reserve.clone().acquire_owned() => Slot::reserve(permit.expect(OPEN)),
                    () = &mut stop => break,
                },
            },
        };
        let socket = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(err) => {
                    if accept_failed(err) {
                        tokio::select! {
                            () = tokio::time::sleep(ACCEPT_PAUSE) => {}
                            () = &mut stop => break,
                        }
                    }
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // The wait for a connection may be long: a slot that came free meanwhile is taken now, so
        // that a stream is refused only if the slots are all in use when it arrives.
        if slot.reserve {
            if let Ok(permit) = slots.clone().try_acquire_owned() {
                slot = Slot::served(permit);
            }
        }
        if slot.reserve && !full {
            log::warn!(
                "{} connections open (MAX_CONNECTIONS): new stream requests are refused with 503 \
                 until some close; up to {RESERVE} other requests are still answered",
                limits.max_connections
            );
        } else if !slot.reserve && full {
            log::info!("below MAX_CONNECTIONS again: serving streams");
        }
        full = slot.reserve;
        prepare(&socket, limits.send_buffer);
        let hyper = if slot.reserve { &reserved } else { &served };
        let connection = hyper(socket, state.streams.shutdown.clone(), cut.subscribe());
        metrics.connections_open.fetch_add(1, Relaxed);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            connection.await;
            metrics.connections_open.fetch_sub(1, Relaxed);
            // The slot is held until the connection has ended.
            drop(slot);
        });
    }
    drop(tcp);
    stopping();
    let grace = limits.shutdown_grace;
    if tokio::time::timeout(grace, cut.wait_for_tasks())
        .await
        .is_err()
    {
        log::warn!(
            "{} connections still open {} s after shutdown (SHUTDOWN_GRACE_SECS): closing them",
            metrics.connections_open.load(Relaxed),
            grace.as_secs()
        );
        cut.fire();
        cut.wait_for_tasks().await;
    }
}

/// Socket options for a new connection: no Nagle delay (events are small writes that must leave
/// at once, not wait for the previous one's ACK), and the send buffer that bounds what a client
/// that stops reading holds in the kernel.
fn prepare(socket: &TcpStream, send_buffer: Option<usize>) {
    let _ = socket.set_nodelay(true);
    if let Some(bytes) = send_buffer {
        if let Err(err) = socket2::SockRef::from(socket).set_send_buffer_size(bytes) {
            log::warn!("cannot set a connection's send buffer to {bytes} bytes: {err}");
        }
    }
}

/// Serves one connection with hyper and warp's routes (whose type cannot be named), until it
/// ends, stays silent too long, or is cut after the shutdown grace.
type Serve = Arc<
    dyn Fn(TcpStream, Shutdown, Shutdown) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync,
>;

/// What every connection of one kind (the slots', or the reserve's) is served with.
struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    /// `None` on the reserve, which speaks HTTP/1 only.
    http2: Option<hyper::server::conn::http2::Builder<TokioExecutor>>,
    head_timeout: Duration,
    idle_timeout: Duration,
}

/// warp's routes behind hyper, for the connections of the slots or of the reserve. A connection's
/// whole life: its first bytes within the head timeout (hyper's own timer starts only once it
/// reads a head), which say whether it speaks HTTP/2 (with prior knowledge) or HTTP/1; then
/// hyper until the connection ends; at shutdown hyper finishes what it is answering (streams end
/// then) and closes.
fn hyper(state: Arc<State>, limits: &Limits, reserve: bool) -> Serve {
    let routes = http::routes(state, reserve);
    let head_timeout = if reserve {
        limits.header_timeout.min(http::RESERVE_TIMEOUT)
    } else {
        limits.header_timeout
    };
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(MAX_BUFFER)
        // One request per connection of the reserve, which then has its connection back.
        .keep_alive(!reserve);
    let http2 = (!reserve).then(|| {
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2.timer(TokioTimer::new());
        http2
    });
    let protocols = Protocols {
        http1,
        http2,
        head_timeout,
        idle_timeout: limits.idle_timeout,
    };
    // Shared by every connection, which holds only these two pointers to them.
    let (routes, protocols) = (Arc::new(warp::service(routes)), Arc::new(protocols));
    Arc::new(move |socket, mut shutdown, cut| {
        let service = Routes(routes.clone());
        let protocols = protocols.clone();
        Box::pin(async move {
            let first = tokio::time::timeout(protocols.head_timeout, protocol(&socket));
            let spoke = tokio::select! {
                first = first => first.ok().flatten(),
                () = shutdown.fired() => None,
            };
            let (socket, moved) = Metered::new(socket);
            let io = TokioIo::new(socket);
            let idle = protocols.idle_timeout;
            match (spoke, &protocols.http2) {
                (Some(Protocol::Http1), _) => {
                    let connection = protocols.http1.serve_connection(io, service);
                    drive(connection, &moved, idle, shutdown, cut).await;
                }
                (Some(Protocol::Http2), Some(http2)) => {
                    // Boxed: its state is large, and most connections are HTTP/1.
                    let connection = Box::pin(http2.serve_connection(io, service));
                    drive(connection, &moved, idle, shutdown, cut).await;
                }
                _ => {}
            }
        })
    })
}

/// What a connection speaks, as its first bytes say.
enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (`h2c`): it opens with the connection preface.
    Http2,
}

/// HTTP/2's connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Peeks at a connection's first bytes until they tell its protocol; `None` if it closes first.
/// A peek, not `readable()`, which may complete before the client has said anything.
async fn protocol(socket: &TcpStream) -> Option<Protocol> {
    let mut first = [0u8; PREFACE.len()];
    loop {
        let n = socket.peek(&mut first).await.ok().filter(|n| *n > 0)?;
        if first[..n] != PREFACE[..n] {
            return Some(Protocol::Http1);
        }
        if n == PREFACE.len() {
            return Some(Protocol::Http2);
        }
        // A preface in pieces: wait for the rest (rare enough for a short sleep).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Serves a hyper connection until it ends, nothing moves on it for `idle`, or it is `cut`; at
/// `shutdown` it is asked to finish gracefully.
async fn drive<C>(
    connection: C,
    moved: &AtomicU64,
    idle: Duration,
    mut shutdown: Shutdown,
    mut cut: Shutdown,
) where
    C: Graceful,
{
    let mut connection = std::pin::pin!(connection);
    let mut stopping = false;
    loop {
        // Gated: the connection's task wakes for every event its streams send, and these rarely
        // have anything to say.
        let ended = Gated::new(Box::pin(async {
            tokio::select! {
                biased;
                () = cut.fired() => End::Cut,
                () = silent(moved, idle) => End::Silent,
                () = shutdown.fired(), if !stopping => End::Shutdown,
            }
        }));
        let end = tokio::select! {
            served = connection.as_mut() => {
                if let Err(err) = served {
                    log::debug!("HTTP connection ended with an error: {err}");
                }
                return;
            }
            end = ended => end,
        };
        match end {
            End::Shutdown => {
                stopping = true;
                connection.as_mut().finish();
            }
            End::Silent => {
                log::debug!(
                    "closing a connection on which nothing moved for {} s",
                    idle.as_secs()
                );
                return;
            }
            End::Cut => return,
        }
    }
}

/// A hyper connection that can be asked to finish what it is answering and close.
trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn finish(self: Pin<&mut Self>);
}

/// The bounds hyper puts on a connection's service for a graceful shutdown.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<I, S> Graceful for hyper::server::conn::http1::Connection<I, S>
where
    Self: Future<Output = Result<(), hyper::Error>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<BoxError>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<BoxError>,
{
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Graceful for Pin<Box<hyper::server::conn::http2::Connection<I, S, TokioExecutor>>>
where
    Self: Future<Output = Result<(), hyper::Error>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<BoxError>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<BoxError>,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn finish(self: Pin<&mut Self>) {
        self.get_mut().as_mut().graceful_shutdown();
    }
}

/// Why a connection stops before hyper is done with it.
enum End {
    /// The gateway is shutting down: hyper finishes and closes.
    Shutdown,
    /// Nothing moved for the idle timeout.
    Silent,
    /// The shutdown grace is over.
    Cut,
}

/// warp's routes as a hyper service whose future is boxed: hyper keeps a connection's service
/// future in place for the connection's whole life, and warp's is as large as its largest
/// route's. The routes themselves are shared; a request clones them for as long as it runs.
struct Routes<S>(Arc<S>);

impl<S> hyper::service::Service<Request<Incoming>> for Routes<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let mut service = S::clone(&self.0);
        Box::pin(service.call(request))
    }
}

/// Completes once no read or write of the connection has moved a byte for `timeout` (checked
/// four times per `timeout`, so it fires between one and one and a quarter times it).
async fn silent(moved: &AtomicU64, timeout: Duration) {
    let period = timeout / 4;
    let (mut last, mut quiet) = (moved.load(Relaxed), 0);
    while quiet < 4 {
        tokio::time::sleep(period).await;
        let now = moved.load(Relaxed);
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
    }
}

/// A socket that counts its reads and writes that moved bytes, for [`silent`].
struct Metered {
    socket: TcpStream,
    moved: Arc<AtomicU64>,
}

impl Metered {
    fn new(socket: TcpStream) -> (Metered, Arc<AtomicU64>) {
        let moved = Arc::new(AtomicU64::new(0));
        let metered = Metered {
            socket,
            moved: moved.clone(),
        };
        (metered, moved)
    }

    fn count<T>(
        &self,
        done: Poll<io::Result<T>>,
        moved: impl Fn(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        if let Poll::Ready(Ok(value)) = &done {
            if moved(value) {
                self.moved.fetch_add(1, Relaxed);
            }
        }
        done
    }
}

impl AsyncRead for Metered {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let done = Pin::new(&mut this.socket).poll_read(cx, buf);
        let after = buf.filled().len();
        this.count(done, |_| after > before)
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.socket).poll_write(cx, buf);
        this.count(done, |n| *n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.socket).poll_write_vectored(cx, bufs);
        this.count(done, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_shutdown(cx)
    }
}

/// Logs an accept error; returns whether accepting should pause.
fn accept_failed(err: io::Error) -> bool {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        // The client gave up before its connection was accepted.
        return false;
    }
    log::error!(
        "cannot accept a connection: {err}; pausing {} s (at the open-file limit, new \
         connections wait until streams close)",
        ACCEPT_PAUSE.as_secs()
    );
    true
}

/// What a connection counts against while it is open: one of the `MAX_CONNECTIONS`, or one of
/// the [`RESERVE`] beyond them (no streams there).
struct Slot {
    _permit: OwnedSemaphorePermit,
    reserve: bool,
}

impl Slot {
    fn served(permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            _permit: permit,
            reserve: false,
        }
    }

    fn reserve(permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            _permit: permit,
            reserve: true,
        }
    }
}

/// Why acquiring a slot cannot fail.
const OPEN: &str = "the semaphores are never closed";
