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
//! `accept` takes connections as they have a slot, `connection` serves one connection, and
//! `metered` tells whether anything still moves on it.
//!
//! Invariants: every connection holds its slot until its task ends.

mod accept;
mod connection;
mod metered;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use self::accept::{Listener, Slot};
use crate::config::Config;
use crate::http::State;
use crate::metrics::Metrics;
use crate::shutdown::{self, Trigger};

/// Connections accepted beyond the cap, for anything but streams.
pub use crate::config::CONNECTION_RESERVE as RESERVE;
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

impl Limits {
    /// The limits `config` sets, serving `max_connections` at once (see `MAX_CONNECTIONS`), with
    /// HTTPS if `tls` is there.
    pub fn from_config(
        config: &Config,
        max_connections: usize,
        tls: Option<tls::Acceptors>,
    ) -> Limits {
        Limits {
            max_connections,
            send_buffer: config.send_buffer(),
            header_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            shutdown_grace: config.shutdown_grace,
            tls,
        }
    }
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
    let metrics = state.metrics().clone();
    metrics.connections_max.set(limits.max_connections as i64);
    let served = connection::hyper(state.clone(), &limits, false);
    let reserved = connection::hyper(state.clone(), &limits, true);
    // Fired once the grace after shutdown is over: every connection still open then is closed.
    // Each connection holds a handle until it ends.
    let (cut, _) = shutdown::channel();
    let mut listener = Listener::new(tcp, limits.max_connections);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (socket, slot) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        prepare(&socket, limits.send_buffer);
        let hyper = if slot.reserve { &reserved } else { &served };
        let connection = hyper(socket, state.streams.shutdown.clone(), cut.subscribe());
        spawn(connection, slot, metrics.clone());
    }
    drop(listener);
    stopping();
    close_after_grace(cut, limits.shutdown_grace, &metrics).await;
}

/// Runs a connection to its end, counted open meanwhile; its slot is held until then.
fn spawn(connection: impl Future<Output = ()> + Send + 'static, slot: Slot, metrics: Arc<Metrics>) {
    metrics.connections_open.inc();
    tokio::spawn(async move {
        connection.await;
        metrics.connections_open.dec();
        drop(slot);
    });
}

/// Waits for every connection to finish within `grace`; then closes what is still open.
async fn close_after_grace(cut: Trigger, grace: Duration, metrics: &Metrics) {
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
