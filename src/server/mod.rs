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
//! `connection` serves one connection; `metered` tells whether anything still moves on it.
//!
//! Invariants: every connection holds its slot until its task ends.

mod connection;
mod metered;
pub mod tls;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::State;
use crate::shutdown;

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
    /// HTTPS, when a certificate and key are set.
    pub tls: Option<tls::Acceptors>,
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
    let metrics = state.metrics().clone();
    metrics.connections_max.set(limits.max_connections as i64);
    let served = connection::hyper(state.clone(), &limits, false);
    let reserved = connection::hyper(state.clone(), &limits, true);
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
        metrics.connections_open.inc();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            connection.await;
            metrics.connections_open.dec();
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
            metrics.connections_open.get(),
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
