//! Whether anything still moves on a connection: a socket that counts its reads and writes, and
//! the watchdog that reads the count.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Completes once no read or write of the connection has moved a byte for `timeout` (checked
/// four times per `timeout`, so it fires between one and one and a quarter times it).
pub(super) async fn silent(moved: &AtomicU64, timeout: Duration) {
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
pub(super) struct Metered {
    socket: TcpStream,
    moved: Arc<AtomicU64>,
}

impl Metered {
    pub(super) fn new(socket: TcpStream) -> (Metered, Arc<AtomicU64>) {
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
