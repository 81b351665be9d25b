//! One connection's life: its protocol told by its first bytes, then hyper's HTTP/1 or HTTP/2
//! connection with warp's routes, until it ends, falls silent, or is cut after the shutdown
//! grace.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use warp::reply::Response;

use super::metered::{silent, Metered};
use super::{Limits, MAX_BUFFER};
use crate::gate::Gated;
use crate::http::{self, State};
use crate::shutdown::Shutdown;

/// Serves one connection with hyper and warp's routes (whose type cannot be named), until it
/// ends, stays silent too long, or is cut after the shutdown grace.
pub(super) type Serve = Arc<
    dyn Fn(TcpStream, Shutdown, Shutdown) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync,
>;

/// What every connection of one kind (the slots', or the reserve's) is served with.
struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    /// `None` on the reserve, which speaks HTTP/1 only.
    http2: Option<hyper::server::conn::http2::Builder<TokioExecutor>>,
    /// With HTTPS: the handshake, whose ALPN tells the protocol.
    tls: Option<TlsAcceptor>,
    head_timeout: Duration,
    idle_timeout: Duration,
}

impl Protocols {
    /// HTTP/1 and HTTP/2 (not on the reserve) as `limits` set them, with HTTPS if it is on.
    fn new(limits: &Limits, reserve: bool) -> Protocols {
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
            // What may wait for each stream of a client that stops reading: what its socket holds
            // over HTTP/1.1 (STREAM_SEND_BUFFER), not h2's 400 KB on each of up to 200 streams of
            // a connection; then the stream waits, and catches up later as over HTTP/1.1.
            if let Some(bytes) = limits.send_buffer {
                http2.max_send_buf_size(bytes);
            }
            http2
        });
        let tls = limits.tls.as_ref().map(|acceptors| match reserve {
            true => acceptors.reserve.clone(),
            false => acceptors.served.clone(),
        });
        Protocols {
            http1,
            http2,
            tls,
            head_timeout,
            idle_timeout: limits.idle_timeout,
        }
    }
}

/// warp's routes behind hyper, for the connections of the slots or of the reserve. A connection's
/// whole life: its first bytes within the head timeout (hyper's own timer starts only once it
/// reads a head), which say whether it speaks HTTP/2 (with prior knowledge) or HTTP/1, or with
/// HTTPS the TLS handshake within the same time, whose ALPN says it; then
/// hyper until the connection ends; at shutdown hyper finishes what it is answering (streams end
/// then) and closes.
pub(super) fn hyper(state: Arc<State>, limits: &Limits, reserve: bool) -> Serve {
    let routes = http::routes(state, reserve);
    let protocols = Protocols::new(limits, reserve);
    // Shared by every connection, which holds only these two pointers to them.
    let (routes, protocols) = (Routes::new(warp::service(routes)), Arc::new(protocols));
    Arc::new(move |socket, shutdown, cut| {
        let service = routes.clone();
        let protocols = protocols.clone();
        // Two futures, each boxed at its own size: a plain connection's must not carry the
        // space of a TLS session and its handshake (some 5 KiB on every idle stream).
        match protocols.tls.clone() {
            None => Box::pin(plain(socket, protocols, service, shutdown, cut)),
            Some(acceptor) => Box::pin(encrypted(
                socket, acceptor, protocols, service, shutdown, cut,
            )),
        }
    })
}

/// A plain connection: its first bytes say whether it speaks HTTP/2 (with prior knowledge) or
/// HTTP/1.
async fn plain(
    socket: TcpStream,
    protocols: Arc<Protocols>,
    service: Routes,
    mut shutdown: Shutdown,
    cut: Shutdown,
) {
    let first = tokio::time::timeout(protocols.head_timeout, protocol(&socket));
    let spoke = tokio::select! {
        first = first => first.ok().flatten(),
        () = shutdown.fired() => None,
    };
    let Some(spoke) = spoke else { return };
    let (socket, moved) = Metered::new(socket);
    serve(
        TokioIo::new(socket),
        &moved,
        spoke,
        &protocols,
        service,
        shutdown,
        cut,
    )
    .await;
}

/// A TLS connection: the handshake, within the head timeout, whose ALPN says the protocol.
async fn encrypted(
    socket: TcpStream,
    acceptor: TlsAcceptor,
    protocols: Arc<Protocols>,
    service: Routes,
    mut shutdown: Shutdown,
    cut: Shutdown,
) {
    let (socket, moved) = Metered::new(socket);
    let handshake = tokio::time::timeout(protocols.head_timeout, acceptor.accept(socket));
    let tls = tokio::select! {
        tls = handshake => tls.ok().and_then(Result::ok),
        () = shutdown.fired() => None,
    };
    let Some(tls) = tls else { return };
    let spoke = match tls.get_ref().1.alpn_protocol() {
        Some(b"h2") => Protocol::Http2,
        _ => Protocol::Http1,
    };
    serve(
        TokioIo::new(tls),
        &moved,
        spoke,
        &protocols,
        service,
        shutdown,
        cut,
    )
    .await;
}

/// Serves a connection that has said what it speaks with hyper's HTTP/1 or HTTP/2 connection.
async fn serve<I>(
    io: I,
    moved: &AtomicU64,
    spoke: Protocol,
    protocols: &Protocols,
    service: Routes,
    shutdown: Shutdown,
    cut: Shutdown,
) where
    I: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
{
    let idle = protocols.idle_timeout;
    match (spoke, &protocols.http2) {
        (Protocol::Http1, _) => {
            let connection = protocols.http1.serve_connection(io, service);
            drive(connection, moved, idle, shutdown, cut).await;
        }
        (Protocol::Http2, Some(http2)) => {
            // Boxed: its state is large, and most connections are HTTP/1.
            let connection = Box::pin(http2.serve_connection(io, service));
            drive(connection, moved, idle, shutdown, cut).await;
        }
        (Protocol::Http2, None) => {}
    }
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
        // A preface in pieces.
        more_than(socket, n).await.ok()?;
    }
}

/// Waits, at no cost, until a socket holds more than the `seen` bytes it held; an error if the
/// connection fails. (One that the client half-closes mid-preface waits for the head timeout,
/// as a silent one does.)
///
/// A peek leaves the bytes in the socket, so the socket stays readable and another peek would
/// answer at once, for ever: a client that sent part of the preface would keep its task busy.
/// Here a peek that finds only the bytes already seen answers "would block", which clears the
/// socket's readiness: the task then sleeps until the kernel reports the socket readable again,
/// which it does for each new segment that arrives.
async fn more_than(socket: &TcpStream, seen: usize) -> io::Result<()> {
    socket
        .async_io(Interest::READABLE, || {
            // Only the count is read: the bytes are looked at by the caller's next peek.
            let mut scratch = [MaybeUninit::<u8>::uninit(); PREFACE.len()];
            match SockRef::from(socket).peek(&mut scratch)? {
                n if n == seen => Err(io::ErrorKind::WouldBlock.into()),
                _ => Ok(()),
            }
        })
        .await
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
#[derive(Clone)]
struct Routes(Arc<dyn Fn(Request<Incoming>) -> Answer + Send + Sync>);

/// What a request to the routes becomes.
type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Routes {
    fn new<S>(service: S) -> Self
    where
        S: tower_service::Service<Request<Incoming>, Response = Response, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Routes(Arc::new(move |request| {
            Box::pin(service.clone().call(request))
        }))
    }
}

impl hyper::service::Service<Request<Incoming>> for Routes {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        (self.0)(request)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::poll_fn;
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A client connected to a server's end of a loopback connection.
    async fn connected() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    // The clock is paused: a minute passes at once, and every timer the sniffer set would fire.
    #[tokio::test(start_paused = true)]
    async fn a_preface_in_pieces_is_looked_at_again_only_when_more_of_it_comes() {
        let (mut client, server) = connected().await;
        let mut sniff = std::pin::pin!(protocol(&server));
        let polls = Cell::new(0);
        let mut sniffing = poll_fn(|cx| {
            polls.set(polls.get() + 1);
            sniff.as_mut().poll(cx)
        });
        for piece in [&PREFACE[..1], &PREFACE[1..10]] {
            client.write_all(piece).await.unwrap();
            polls.set(0);
            let waited = tokio::time::timeout(Duration::from_secs(60), &mut sniffing).await;
            assert!(waited.is_err(), "a part of the preface tells nothing yet");
            // Woken for the piece, and not again while nothing more comes.
            let polls = polls.get();
            assert!(
                polls <= 3,
                "polled {polls} times in a minute without a byte"
            );
        }
        client.write_all(&PREFACE[10..]).await.unwrap();
        let spoke = tokio::time::timeout(Duration::from_secs(60), &mut sniffing).await;
        assert!(matches!(spoke, Ok(Some(Protocol::Http2))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_parts_from_the_preface_speaks_http1() {
        let (mut client, server) = connected().await;
        client.write_all(b"PRI").await.unwrap();
        let mut sniff = std::pin::pin!(protocol(&server));
        let waited = tokio::time::timeout(Duration::from_secs(60), sniff.as_mut()).await;
        assert!(waited.is_err(), "a part of the preface tells nothing yet");
        client.write_all(b" * HTTP/1.1\r\n").await.unwrap();
        let spoke = tokio::time::timeout(Duration::from_secs(15), sniff).await;
        assert!(matches!(spoke, Ok(Some(Protocol::Http1))));
    }
}
