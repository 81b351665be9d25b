//! Sockets for the load generator: connecting from a chosen loopback address, reading and
//! writing with readiness and one syscall at a time (no per-connection buffer), a small
//! keep-alive HTTP client, and the process's open-file limit.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::{TcpSocket, TcpStream};

/// The `i`-th loopback source address: 127.0.0.2, 127.0.0.3, … carrying into the third octet.
/// Each address has its own range of ephemeral ports, so spreading clients over several lifts
/// the ~28k-connection ceiling of one address.
pub fn source_address(i: usize) -> IpAddr {
    let n = 2 + i as u32;
    IpAddr::V4(Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8))
}

/// Connects to `target`, from `source` when given (bound before connecting).
pub async fn connect_from(source: Option<IpAddr>, target: SocketAddr) -> io::Result<TcpStream> {
    connect_with(source, None, target).await
}

/// Like [`connect_from`], with a receive buffer of `receive_buffer` bytes when given (set
/// before connecting, so the window the client offers stays that small).
pub async fn connect_with(
    source: Option<IpAddr>,
    receive_buffer: Option<u32>,
    target: SocketAddr,
) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

pub async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until `stream` has bytes, then hands what one read returns to `take`; `Ok(0)` at the
/// end of the stream. Reads go into a buffer of the thread's, so idle connections hold none.
///
/// A read that did not fill the buffer emptied the socket, so it also clears the socket's
/// readiness: the next wait then sleeps at once instead of costing a read that finds nothing,
/// which halves the load generator's reads. This is safe because epoll (edge-triggered, as
/// tokio uses it) reports every later arrival of data as a new event.
pub async fn read_with<T>(stream: &TcpStream, mut take: impl FnMut(&[u8]) -> T) -> io::Result<T> {
    loop {
        // poll_read_ready, not readable(): no waiter is linked and unlinked on every read.
        std::future::poll_fn(|cx| stream.poll_read_ready(cx)).await?;
        let mut taken = None;
        let read = stream.try_io(Interest::READABLE, || {
            READ_BUFFER.with_borrow_mut(|buf| {
                let n = recv(stream.as_raw_fd(), buf)?;
                taken = Some(take(&buf[..n]));
                if n > 0 && n < buf.len() {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(())
            })
        });
        if let Some(taken) = taken {
            return Ok(taken);
        }
        match read {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
            Ok(()) => unreachable!("a successful read always takes"),
        }
    }
}

thread_local! {
    static READ_BUFFER: RefCell<Box<[u8]>> = RefCell::new(vec![0; 64 * 1024].into_boxed_slice());
}

/// One `recv` on a socket; `WouldBlock` when it has nothing yet.
fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length, and `fd` is an open socket borrowed from
    // a live TcpStream for the duration of the call.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One keep-alive HTTP/1.1 connection for small GETs (health and metrics): it stays usable when
/// the server can no longer accept new connections.
pub struct HttpConnection {
    stream: TcpStream,
    addr: SocketAddr,
}

/// How long one small GET may take.
const HTTP_WAIT: Duration = Duration::from_secs(10);

impl HttpConnection {
    pub async fn open(addr: SocketAddr) -> io::Result<HttpConnection> {
        let stream = tokio::time::timeout(HTTP_WAIT, connect_from(None, addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        Ok(HttpConnection { stream, addr })
    }

    /// Where it is connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET path`: the status and the body (which must have a Content-Length).
    pub async fn get(&mut self, path: &str) -> io::Result<(u16, String)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        let exchange = async {
            write_all(&self.stream, request.as_bytes()).await?;
            self.read_response().await
        };
        tokio::time::timeout(HTTP_WAIT, exchange)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("GET {path} timed out")))?
    }

    async fn read_response(&self) -> io::Result<(u16, String)> {
        let mut raw = Vec::new();
        loop {
            if let Some(response) = parse_response(&raw)? {
                return Ok(response);
            }
            let n = read_with(&self.stream, |bytes| {
                raw.extend_from_slice(bytes);
                bytes.len()
            })
            .await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

/// A complete response with a Content-Length body, or `None` if more bytes are needed.
fn parse_response(raw: &[u8]) -> io::Result<Option<(u16, String)>> {
    let Some(end) = memchr::memmem::find(raw, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| bad("no content-length"))?;
    let body = &raw[end + 4..];
    if body.len() < length {
        return Ok(None);
    }
    Ok(Some((
        status,
        String::from_utf8_lossy(&body[..length]).into_owned(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_count_up_from_127_0_0_2() {
        assert_eq!(source_address(0).to_string(), "127.0.0.2");
        assert_eq!(source_address(253).to_string(), "127.0.0.255");
        assert_eq!(source_address(254).to_string(), "127.0.1.0");
    }

    #[test]
    fn a_response_is_complete_once_its_body_is() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel";
        assert!(parse_response(raw).unwrap().is_none());
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno";
        assert_eq!(parse_response(raw).unwrap(), Some((503, "no".into())));
    }
}
