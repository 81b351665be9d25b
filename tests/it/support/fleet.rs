//! A fleet for the tests: gateway processes (the real binary, so that one can be killed or
//! restarted) on one database, and clients that read through nginx and reconnect as a browser's
//! `EventSource` does, with the last id they were told.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::sse::SseEvent;
use super::WAIT;

/// One gateway process.
pub struct Gateway {
    pub addr: SocketAddr,
    database_url: String,
    child: Option<Child>,
}

impl Gateway {
    /// Starts the binary on `addr` (a fixed port, so that a restart takes it again).
    pub async fn start(database_url: &str, addr: SocketAddr) -> Gateway {
        let mut gateway = Gateway {
            addr,
            database_url: database_url.to_owned(),
            child: None,
        };
        gateway.restart().await;
        gateway
    }

    /// Starts the process again (after [`Gateway::kill`] or [`Gateway::stop`]), and waits until
    /// it is ready.
    pub async fn restart(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_pgsse"))
            .env("DATABASE_URL", &self.database_url)
            .env("BIND_ADDR", self.addr.to_string())
            .env("RUST_LOG", "error")
            .env("SHUTDOWN_GRACE_SECS", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the gateway starts");
        super::after_exit(&format!("kill -9 {} 2>/dev/null", child.id()));
        self.child = Some(child);
        let addr = self.addr;
        let ready = async {
            loop {
                if tokio::net::TcpStream::connect(addr).await.is_ok()
                    && super::http::get(addr, "/readyz").await.status == 200
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        timeout(WAIT, ready).await.expect("the gateway gets ready");
    }

    /// SIGKILL: gone at once, with every stream it held.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits until the process has exited.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let exited = tokio::task::spawn_blocking(move || child.wait());
            timeout(WAIT, exited)
                .await
                .expect("the gateway exits after SIGTERM")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback address for a gateway.
pub fn free_addr() -> SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

/// What one client received, over all its connections.
#[derive(Debug, Default)]
pub struct Received {
    /// The events with an id (not the `connection` event each stream opens with).
    pub events: Vec<SseEvent>,
    /// Connections opened, the first one included; each answered 200.
    pub connections: usize,
}

/// A client reading `url` through curl, reconnecting with `Last-Event-ID` whenever the stream
/// ends, until told to stop once it has read through the last id it is given.
pub struct Reconnecting {
    task: JoinHandle<Received>,
    through: watch::Sender<Option<i64>>,
}

impl Reconnecting {
    pub fn start(url: &str) -> Reconnecting {
        let (through, mut until) = watch::channel(None::<i64>);
        let url = url.to_owned();
        let task = tokio::spawn(async move {
            let mut received = Received::default();
            let mut last_id: Option<String> = None;
            loop {
                let mut args = vec!["-skN".to_owned(), "--http2".to_owned(), "-i".to_owned()];
                if let Some(id) = &last_id {
                    args.push("-H".into());
                    args.push(format!("Last-Event-ID: {id}"));
                }
                args.push(url.clone());
                let mut child = tokio::process::Command::new("curl")
                    .args(&args)
                    .stdout(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("curl runs");
                let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
                let mut block = Block::default();
                let mut status = None;
                loop {
                    let read_through = last_id.as_deref().and_then(|id| id.parse().ok());
                    let done = (*until.borrow())
                        .is_some_and(|through| read_through.is_some_and(|id: i64| id >= through));
                    if done {
                        return received;
                    }
                    let line = tokio::select! {
                        line = lines.next_line() => line.ok().flatten(),
                        _ = until.changed() => continue,
                    };
                    let Some(line) = line else { break };
                    if status.is_none() {
                        assert!(line.starts_with("HTTP/2 200"), "a reconnect got {line}");
                        status = Some(line);
                        received.connections += 1;
                        continue;
                    }
                    let event = block.line(&line, &mut last_id);
                    if let Some(event) = event.filter(|e| e.id.is_some()) {
                        received.events.push(event);
                    }
                }
                // The stream ended (its gateway went away): reconnect, as EventSource does
                // after its retry delay.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Reconnecting { task, through }
    }

    /// Waits until the client has read through `id`, and returns what it received.
    pub async fn finish(self, id: i64) -> Received {
        let _ = self.through.send(Some(id));
        timeout(WAIT * 2, self.task)
            .await
            .unwrap_or_else(|_| panic!("a client did not read through {id} in time"))
            .expect("the client task")
    }
}

/// An SSE block being read, line by line, as the WHATWG parser does.
#[derive(Default)]
struct Block {
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    in_body: bool,
}

impl Block {
    /// Takes one line of curl's output; returns the event a blank line dispatches, if any, and
    /// keeps the last id a block set (data or not) in `last_id`.
    fn line(&mut self, line: &str, last_id: &mut Option<String>) -> Option<SseEvent> {
        let line = line.trim_end_matches('\r');
        if !self.in_body {
            // The response head, up to its blank line.
            self.in_body = line.is_empty();
            return None;
        }
        if !line.is_empty() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "id" => self.id = Some(value),
                "event" => self.event = Some(value),
                "data" => self.data = Some(value),
                _ => {}
            }
            return None;
        }
        let block = std::mem::take(self);
        self.in_body = true;
        if block.id.is_some() {
            *last_id = block.id.clone();
        }
        let data = block.data?;
        Some(SseEvent {
            id: block.id,
            event: block.event.unwrap_or_else(|| "message".into()),
            data,
        })
    }
}
