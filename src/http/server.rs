//! Accepting connections and deciding who answers them.
//!
//! Each connection's first request head is read here. An event stream that `direct` can serve
//! is written straight to the socket; every other connection (the REST API, pages, health, and
//! any stream request `direct` leaves alone) goes to hyper with warp's routes, the bytes already
//! read handed back first. A connection hyper serves stays with hyper, so a stream opened on a
//! kept-alive connection is served by the same code through warp.
//!
//! At most `MAX_CONNECTIONS` connections are served at once. Beyond that a few more are accepted
//! into a small reserve, so that health checks, metrics and the API still get answers when the
//! gateway is full of streams: a stream request there is refused at once with a `503` and a
//! `Retry-After` (a load balancer can send it to another instance, a browser's page retries),
//! anything else is answered and its connection closed. Only when the reserve is in use too do new
//! connections wait in the listen backlog.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::direct::{self, Head};
use super::State;

/// What a connection's first read gets room for; a longer head grows the buffer.
const HEAD_BUFFER: usize = 1024;
/// A head longer than this goes to hyper, which refuses it.
const MAX_HEAD: usize = 16 * 1024;
/// How long a new connection may take to send its first request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections accepted beyond the cap, for anything but streams. They come out of the file
/// descriptors the default cap leaves free.
pub const RESERVE: usize = 16;
/// How long a connection in the reserve may take to send its request head.
const RESERVE_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// What a client refused at the cap is told to wait before trying again.
const RETRY_AFTER_SECS: u64 = 5;
/// Pause after an accept error such as running out of file descriptors, which would otherwise
/// repeat at once.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Serves connections from `tcp`, at most `max_connections` at once, until `stop` completes;
/// then stops accepting, calls `stopping`, and returns once hyper's connections have finished
/// (streams end through the shutdown that `stopping` fires).
pub async fn serve(
    tcp: TcpListener,
    state: Arc<State>,
    max_connections: usize,
    stop: impl Future<Output = ()>,
    stopping: impl FnOnce(),
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let reserve = Arc::new(Semaphore::new(RESERVE));
    let metrics = state.metrics.clone();
    metrics
        .connections_max
        .store(max_connections as u64, Relaxed);
    let routes = super::routes(state.clone());
    let hyper: ServeWithHyper = Arc::new(move |io, watcher, reserve| {
        let service = TowerToHyperService::new(warp::service(routes.clone()));
        Box::pin(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            if reserve {
                // One request, over HTTP/1, then the reserve has its connection back.
                builder = builder.http1_only();
                builder.http1().keep_alive(false);
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            if let Err(err) = watcher.watch(connection).await {
                log::debug!("HTTP connection ended with an error: {err}");
            }
        })
    });
    let graceful = GracefulShutdown::new();
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
                "{max_connections} connections open (MAX_CONNECTIONS): new stream requests are \
                 refused with 503 until some close; up to {RESERVE} other requests are still \
                 answered"
            );
        } else if !slot.reserve && full {
            log::info!("below MAX_CONNECTIONS again: serving streams");
        }
        full = slot.reserve;
        // Events are small writes that must leave at once, not wait for the previous one's ACK.
        let _ = socket.set_nodelay(true);
        let (state, hyper, watcher) = (state.clone(), hyper.clone(), graceful.watcher());
        metrics.connections_open.fetch_add(1, Relaxed);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            connection(socket, state, hyper, watcher, slot).await;
            metrics.connections_open.fetch_sub(1, Relaxed);
        });
    }
    drop(tcp);
    stopping();
    graceful.shutdown().await;
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

/// Serves a connection with hyper and warp's routes (the routes' type cannot be named); the bool
/// says whether it is one of the reserve's.
type ServeWithHyper =
    Arc<dyn Fn(Replay, Watcher, bool) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

async fn connection(
    socket: TcpStream,
    state: Arc<State>,
    hyper: ServeWithHyper,
    watcher: Watcher,
    slot: Slot,
) {
    let mut shutdown = state.shutdown.clone();
    let head_timeout = if slot.reserve {
        RESERVE_HEAD_TIMEOUT
    } else {
        HEAD_TIMEOUT
    };
    let read = tokio::select! {
        read = tokio::time::timeout(head_timeout, read_head(&socket)) => read,
        () = shutdown.fired() => return,
    };
    drop(shutdown);
    // Closed, failed or silent before a whole head arrived: nothing to answer.
    let Ok(Some((received, head))) = read else {
        return;
    };
    if slot.reserve && matches!(head, Head::Stream(_)) {
        state.metrics.streams_refused.fetch_add(1, Relaxed);
        return refuse_at_cap(socket, state.metrics.connections_max.load(Relaxed)).await;
    }
    if let Head::Stream(request) = head {
        let send_buffer = state.stream_send_buffer;
        // Boxed, as hyper's side is: neither enlarges the task of every idle stream.
        if let Some((stream, chunked)) = Box::pin(direct::start(request, state)).await {
            drop((received, watcher));
            if let Some(bytes) = send_buffer {
                if let Err(err) = direct::set_send_buffer(&socket, bytes) {
                    log::warn!("cannot set a stream's send buffer to {bytes} bytes: {err}");
                }
            }
            return direct::serve(socket, chunked, stream).await;
        }
    }
    let io = Replay {
        received,
        at: 0,
        socket,
    };
    hyper(io, watcher, slot.reserve).await;
    // The slot is held until the connection has ended.
    drop(slot);
}

/// Answers a stream request that came in beyond `MAX_CONNECTIONS`.
async fn refuse_at_cap(mut socket: TcpStream, max_connections: u64) {
    log::debug!("stream request refused: {max_connections} connections open (MAX_CONNECTIONS)");
    let body = serde_json::json!({
        "error": format!(
            "the gateway is serving its maximum of {max_connections} connections \
             (MAX_CONNECTIONS); try again in {RETRY_AFTER_SECS} s"
        ),
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: {RETRY_AFTER_SECS}\r\ncontent-length: {}\r\nconnection: close\r\n\
         cache-control: no-store\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        socket.write_all(response.as_bytes()).await?;
        socket.shutdown().await
    };
    let _ = tokio::time::timeout(RESERVE_HEAD_TIMEOUT, write).await;
}

/// Reads until the first request head is complete (or clearly not one `direct` serves).
async fn read_head(socket: &TcpStream) -> Option<(Vec<u8>, Head)> {
    let mut received = Vec::with_capacity(HEAD_BUFFER);
    loop {
        socket.readable().await.ok()?;
        if received.len() == received.capacity() {
            if received.len() >= MAX_HEAD {
                return Some((received, Head::Other));
            }
            received.reserve(received.len());
        }
        match socket.try_read_buf(&mut received) {
            Ok(0) => return None,
            Ok(_) => match direct::parse(&received) {
                Head::Partial => {}
                head => return Some((received, head)),
            },
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
}

/// A socket whose first bytes, already received, are read again before anything new.
struct Replay {
    received: Vec<u8>,
    at: usize,
    socket: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.received.len() {
            let rest = &this.received[this.at..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.at += n;
            if this.at == this.received.len() {
                this.received = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write_vectored(cx, bufs)
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
