//! An identity provider's JWKS endpoint, on a loopback port: it serves the document the test
//! sets (or a 503 while told to fail, or a redirect while told to redirect) and counts the
//! requests it answered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use super::WAIT;

/// The longest request head the endpoint reads.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Default)]
struct Shared {
    document: Mutex<String>,
    failing: AtomicBool,
    /// Where to redirect every request to, if anywhere.
    redirect: Mutex<Option<String>>,
    requests: AtomicUsize,
}

pub struct JwksServer {
    /// The document's URL, `http://127.0.0.1:port/jwks`.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    /// Serves `document` on a free loopback port.
    pub async fn start(document: &str) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        JwksServer::serve(listener, document)
    }

    /// Serves `document` on `addr` (a port the test chose before, say).
    pub async fn start_on(addr: SocketAddr, document: &str) -> JwksServer {
        let listener = TcpListener::bind(addr).await.unwrap();
        JwksServer::serve(listener, document)
    }

    fn serve(listener: TcpListener, document: &str) -> JwksServer {
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        shared.document.lock().unwrap().push_str(document);
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(answer(socket, serving.clone()));
            }
        });
        JwksServer { url, shared, task }
    }

    /// Serves `document` from now on.
    pub fn set(&self, document: &str) {
        *self.shared.document.lock().unwrap() = document.to_owned();
    }

    /// Answers 503 from now on (or again the document, with `false`).
    pub fn fail(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Answers `302 Found` to `location` from now on.
    pub fn redirect(&self, location: &str) {
        *self.shared.redirect.lock().unwrap() = Some(location.to_owned());
    }

    /// How many requests were answered.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head and answers it, then closes the connection.
async fn answer(mut socket: TcpStream, shared: Arc<Shared>) {
    let mut head = Vec::new();
    let read = timeout(WAIT, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    });
    if !read.await.unwrap_or(false) {
        return;
    }
    let redirect = shared.redirect.lock().unwrap().clone();
    let (status, location, body) = match redirect {
        _ if shared.failing.load(Ordering::SeqCst) => {
            ("503 Service Unavailable", String::new(), String::from("{}"))
        }
        Some(to) => ("302 Found", format!("location: {to}\r\n"), String::new()),
        None => (
            "200 OK",
            String::new(),
            shared.document.lock().unwrap().clone(),
        ),
    };
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let response = format!(
        "HTTP/1.1 {status}\r\n{location}content-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = timeout(WAIT, socket.write_all(response.as_bytes())).await;
}
