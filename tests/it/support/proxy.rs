//! A TCP proxy in front of PostgreSQL that can make its open connections half-open: they stay
//! connected but stop forwarding, as when a network path dies without a reset.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub port: u16,
    /// Connections accepted in an earlier epoch than this stop forwarding.
    epoch: Arc<AtomicU64>,
}

impl Proxy {
    /// Forwards 127.0.0.1:{port} to 127.0.0.1:{target}.
    pub async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("bound").port();
        let epoch = Arc::new(AtomicU64::new(0));
        let accepting = epoch.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let mine = accepting.load(Ordering::SeqCst);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pipe(client_read, server_write, accepting.clone(), mine));
                tokio::spawn(pipe(server_read, client_write, accepting.clone(), mine));
            }
        });
        Proxy { port, epoch }
    }

    /// Every connection open now goes silent for good (its sockets stay open); new connections
    /// are forwarded as before.
    pub fn freeze_open_connections(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, epoch: Arc<AtomicU64>, mine: u64) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if epoch.load(Ordering::SeqCst) != mine {
            // Half-open: keep both sockets open (they live in this frame) and never forward again.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
