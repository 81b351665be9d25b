//! A TCP proxy in front of PostgreSQL that can make its connections half-open: they stay
//! connected but stop forwarding, as when a network path dies without a reset, or a proxy or
//! pooler freezes. In front of a gateway, it can refuse connections for a while, so that a
//! browser reaches a restarted gateway only once the test says so.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Connections accepted in an earlier epoch than this stop forwarding.
    epoch: AtomicU64,
    /// While set, new connections are accepted and then never answered.
    frozen: AtomicBool,
    /// Connections accepted while frozen.
    held: AtomicUsize,
    /// While set, new connections are closed at once, as a port that nobody listens on refuses
    /// them.
    refusing: AtomicBool,
}

impl Proxy {
    /// Forwards 127.0.0.1:{port} to 127.0.0.1:{target}.
    pub async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("bound").port();
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if accepting.refusing.load(Ordering::SeqCst) {
                    continue;
                }
                if accepting.frozen.load(Ordering::SeqCst) {
                    accepting.held.fetch_add(1, Ordering::SeqCst);
                    // The TCP connection is up, but not a byte is ever answered.
                    tokio::spawn(async move {
                        let _client = client;
                        std::future::pending::<()>().await;
                    });
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let mine = accepting.epoch.load(Ordering::SeqCst);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pipe(client_read, server_write, accepting.clone(), mine));
                tokio::spawn(pipe(server_read, client_write, accepting.clone(), mine));
            }
        });
        Proxy { port, shared }
    }

    /// Every connection open now goes silent for good (its sockets stay open); new connections
    /// are forwarded as before.
    pub fn freeze_open_connections(&self) {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Every connection open now, and every one accepted until [`Proxy::thaw`], goes silent for
    /// good.
    pub fn freeze(&self) {
        self.shared.frozen.store(true, Ordering::SeqCst);
        self.freeze_open_connections();
    }

    /// New connections are forwarded again; those opened while frozen stay silent.
    pub fn thaw(&self) {
        self.shared.frozen.store(false, Ordering::SeqCst);
    }

    /// New connections are closed at once until [`Proxy::forward`].
    pub fn refuse(&self) {
        self.shared.refusing.store(true, Ordering::SeqCst);
    }

    /// New connections are forwarded again.
    pub fn forward(&self) {
        self.shared.refusing.store(false, Ordering::SeqCst);
    }

    /// How many connections were accepted while frozen.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, shared: Arc<Shared>, mine: u64) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if shared.epoch.load(Ordering::SeqCst) != mine {
            // Half-open: keep both sockets open (they live in this frame) and never forward again.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
