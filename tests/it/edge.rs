//! The HTTP edge against clients that misbehave: heads and bodies that never end, odd framing at
//! the caps, a stalled reader at shutdown, stalled resumers with big events (over HTTP/1.1 and
//! HTTP/2), a stalled stream beside a backlog of big events, HTTP/2 against the stream cap, an
//! HTTP/2 preface in pieces.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};

use crate::support::http::{expect_head, get};
use crate::support::process::KillOnDrop;
use crate::support::sse::SseClient;
use crate::support::{
    connect, fresh_database, gateway_send_queue, insert_board, metric, newest_event, pg,
    spawn_app_with, WAIT,
};

const STREAM: &str = "/sse/notifications/";

/// How much later than a deadline it was given the gateway may act on it when the machine's
/// cores are busy with other work; still well short of the defaults the tests tell a configured
/// deadline from (15 s for a head, 30 s for a body, 10 s of shutdown grace).
const LATE: Duration = Duration::from_secs(6);

/// Keeps writing `trickle` a byte every 50 ms while reading, until the server closes the
/// connection; returns how long that took and what the server wrote.
async fn until_closed(socket: &mut TcpStream, trickle: Option<u8>) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let closed = async {
        let mut buf = [0u8; 4096];
        loop {
            tokio::select! {
                read = socket.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                },
                () = tokio::time::sleep(Duration::from_millis(50)) => {
                    if let Some(byte) = trickle {
                        if socket.write_all(&[byte]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    };
    timeout(WAIT, closed)
        .await
        .expect("the gateway closes the connection");
    (started.elapsed(), answer)
}

/// A connection that has sent `head`, and then a 17 KiB header that is still being written.
async fn endless_head(addr: SocketAddr, head: &[u8]) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(head).await.unwrap();
    socket.write_all(b"X-Endless: ").await.unwrap();
    socket.write_all(&[b'a'; 17 * 1024]).await.unwrap();
    socket
}

#[tokio::test]
async fn heads_that_never_end_and_silent_connections_are_cut_at_the_header_timeout() {
    let app = spawn_app_with(&[("HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";
    let mut endless = endless_head(app.addr, head).await;
    let (took, _) = until_closed(&mut endless, Some(b'a')).await;
    assert!(
        took < Duration::from_secs(1) + LATE,
        "an endless head lasted {took:?}"
    );

    // A kept-alive connection whose second request never finishes.
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    kept.write_all(head).await.unwrap();
    kept.write_all(b"\r\n").await.unwrap();
    let mut reader = BufReader::new(kept);
    let (status, headers) = expect_head(&mut reader).await;
    assert_eq!(status, 200);
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.unwrap();
    let mut kept = reader.into_inner();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (took, _) = until_closed(&mut kept, Some(b'X')).await;
    assert!(
        took < Duration::from_secs(1) + LATE,
        "a second head lasted {took:?}"
    );

    // One that never says anything.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let (took, _) = until_closed(&mut silent, None).await;
    assert!(
        took < Duration::from_secs(1) + LATE,
        "a silent connection lasted {took:?}"
    );
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_answered_408_at_the_body_timeout() {
    let app = spawn_app_with(&[("BODY_READ_TIMEOUT_SECS", "1")]).await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(
            b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    let (took, answer) = until_closed(&mut socket, Some(b' ')).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1 s"), "{answer}");
    assert!(
        took < Duration::from_secs(1) + LATE,
        "the body read lasted {took:?}"
    );
    let sql = app.sql().await;
    let users: i64 = sql.one("select count(*) from app_user", &[]).await.get(0);
    assert_eq!(users, 0);
}

#[tokio::test]
async fn at_the_connection_cap_stream_requests_get_503_however_framed_and_endless_heads_pass() {
    let app = spawn_app_with(&[("MAX_CONNECTIONS", "2"), ("HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let _first = app.stream().await;
    let _second = app.stream().await;
    let framings: [&[u8]; 4] = [
        b"GET /sse/notifications/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /sse/notifications/#fragment HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /sse/notifications HTTP/1.0\r\n\r\n",
        b"GET /sse/notifications/?lastEventId=0 HTTP/1.1\r\nHost: x\r\nX-Odd: \x80\xff\r\n\r\n",
    ];
    for request in framings {
        let mut socket = TcpStream::connect(app.addr).await.unwrap();
        socket.write_all(request).await.unwrap();
        let (_, answer) = until_closed(&mut socket, None).await;
        let answer = String::from_utf8_lossy(&answer).to_lowercase();
        let shown = String::from_utf8_lossy(request);
        assert!(
            answer.starts_with("http/1.") && answer.contains(" 503 "),
            "{shown}: {answer}"
        );
        assert!(answer.contains("retry-after: 5"), "{shown}: {answer}");
        assert!(answer.contains("max_connections"), "{shown}: {answer}");
        assert!(!answer.contains("text/event-stream"), "{shown}: {answer}");
    }
    // Endless heads fill the whole reserve; they are cut, and the probe behind them answered.
    let mut endless = Vec::new();
    for _ in 0..pgsse::server::RESERVE {
        endless
            .push(endless_head(app.addr, b"GET /sse/notifications/ HTTP/1.1\r\nHost: x\r\n").await);
    }
    let started = Instant::now();
    let probe = get(app.addr, "/healthz").await;
    assert_eq!(probe.status, 200);
    // Cut by the 1 s header timeout, before the reserve's own limit would have cut them.
    assert!(
        started.elapsed() < pgsse::http::RESERVE_TIMEOUT,
        "the probe waited {:?}",
        started.elapsed()
    );
    assert_eq!(metric(&app, "clients_connected").await, 2.0);
}

#[tokio::test]
async fn at_shutdown_a_stalled_reader_on_a_kept_alive_connection_is_cut_after_the_grace() {
    let mut app = spawn_app_with(&[("SHUTDOWN_GRACE_SECS", "1")]).await;
    let sql = app.sql().await;
    insert_board(&sql, "alice", "setup").await;
    // As a browser's EventSource does: the stream on a connection that served a page first.
    let stalled = SseClient::connect_after(app.addr, "/healthz", STREAM).await;
    // Megabytes of events that it never reads.
    for _ in 0..20 {
        sql.exec(
            "insert into board(name, creator_id) \
             select repeat('x', 1000) || g, u.id from generate_series(1, 500) g, app_user u",
        )
        .await;
    }
    let filled = async {
        while gateway_send_queue(app.addr, stalled.local_addr()).unwrap_or(0) < 16 * 1024 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    timeout(WAIT, filled)
        .await
        .expect("the stalled stream's socket fills");
    let started = Instant::now();
    app.stop().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1) + LATE,
        "shutdown took {took:?}"
    );
    drop(stalled);
}

/// A gateway (the real binary, so that its memory is its own) with `settings`, on a database of
/// its own; its address and its database's URL.
async fn gateway_binary(settings: &[(&str, &str)]) -> (KillOnDrop, SocketAddr, String) {
    let url = fresh_database(pg::shared()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let gateway = Command::new(env!("CARGO_BIN_EXE_pgsse"))
        .env("DATABASE_URL", &url)
        .env("BIND_ADDR", addr.to_string())
        .env("RUST_LOG", "error")
        .envs(settings.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let gateway = KillOnDrop::new(gateway);
    let ready = async {
        while TcpStream::connect(addr).await.is_err() || get(addr, "/readyz").await.status != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(WAIT, ready).await.expect("the gateway starts");
    (gateway, addr, url)
}

/// A gateway (the real binary) whose event table holds 500 events of about 60 KB each, 30 MB of
/// history, all published; and its address.
async fn gateway_with_big_history() -> (KillOnDrop, SocketAddr) {
    let (gateway, addr, url) = gateway_binary(&[("RING_CAPACITY", "10")]).await;
    let sql = connect(&url).await;
    sql.exec(
        "select pgsse.publish('big', jsonb_build_object('blob', repeat(md5(g::text), 1875))) \
           from generate_series(1, 500) g",
    )
    .await;
    let newest = newest_event(&sql).await;
    let published = async {
        while crate::support::http::get(addr, "/metrics")
            .await
            .text()
            .lines()
            .all(|l| l != format!("pgsse_hub_last_event_id {newest}"))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(WAIT, published)
        .await
        .expect("the events are published");
    (gateway, addr)
}

/// The gateway's highest RSS over a second, in KiB.
async fn peak_rss(pid: u32) -> u64 {
    let mut peak = 0;
    for _ in 0..20 {
        peak = peak.max(pgsse_bench_rss(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peak
}

#[tokio::test]
async fn stalled_resumers_of_big_events_hold_at_most_a_page_each() {
    let (mut gateway, addr) = gateway_with_big_history().await;
    let before = pgsse_bench_rss(gateway.id());

    // Twenty clients resume from the start with 4 KiB receive buffers, and read nothing.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        let request = format!("GET {STREAM}?lastEventId=0 HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    let all_waiting = async {
        while !stalled
            .iter()
            .all(|s| gateway_send_queue(addr, s.local_addr().unwrap()).unwrap_or(0) > 0)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(WAIT, all_waiting)
        .await
        .expect("every stalled stream has written what it could");
    let peak = peak_rss(gateway.id()).await;
    let growth_kib = peak.saturating_sub(before);
    println!("20 stalled resumers: gateway RSS {before} KiB, then at most {peak} KiB");
    let _ = gateway.kill();
    let _ = gateway.wait();
    assert!(
        growth_kib < 40 * 1024,
        "20 stalled resumers grew the gateway by {growth_kib} KiB (from {before} KiB)"
    );
}

/// The gateway's highest RSS, in KiB, sampled every 20 ms until the task is aborted.
fn sample_peak_rss(pid: u32) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>) {
    let peak = Arc::new(AtomicU64::new(0));
    let sampled = peak.clone();
    let sampler = tokio::spawn(async move {
        loop {
            sampled.fetch_max(pgsse_bench_rss(pid), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (sampler, peak)
}

#[tokio::test]
async fn a_backlog_of_big_events_beside_a_stalled_stream_is_held_in_memory_only_up_to_ring_bytes() {
    // 1,000 events of 60 KB, 60 MB, against a ring of 8 MiB.
    const EVENTS: i64 = 1000;
    let (mut gateway, addr, url) = gateway_binary(&[("RING_BYTES", "8388608")]).await;
    let sql = connect(&url).await;
    let mut live = SseClient::connect(addr, STREAM, &[]).await;
    // A client that opens a stream with a 4 KiB receive buffer and never reads it.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    let request = format!("GET {STREAM} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stalled.write_all(request.as_bytes()).await.unwrap();
    let opened = async {
        while !get(addr, "/metrics")
            .await
            .text()
            .lines()
            .any(|l| l == "pgsse_clients_connected 2")
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(WAIT, opened).await.expect("both streams open");
    let before = pgsse_bench_rss(gateway.id());
    let (sampler, peak) = sample_peak_rss(gateway.id());

    let first = newest_event(&sql).await + 1;
    sql.exec(&format!(
        "select pgsse.publish('big', jsonb_build_object('blob', repeat(md5(g::text), 1875))) \
           from generate_series(1, {EVENTS}) g"
    ))
    .await;
    let board = insert_board(&sql, "alice", "after the backlog").await;
    for id in first..first + EVENTS {
        let event = live.next_event().await;
        assert_eq!((event.id(), event.event.as_str()), (id, "big"));
        assert_eq!(
            event.data.len(),
            r#"{"blob":""}"#.len() + 60_000,
            "event {id}"
        );
    }
    let event = live.next_event().await;
    assert_eq!(
        (event.id(), event.event.as_str()),
        (first + EVENTS, "newBoard")
    );
    assert_eq!(event.json()["board_id"], board);
    sampler.abort();
    let peak = peak.load(Ordering::Relaxed);
    let settled = peak_rss(gateway.id()).await;
    let growth_kib = peak.max(settled).saturating_sub(before);
    println!("gateway RSS {before} KiB, at most {peak} KiB during the backlog, {settled} after");
    let _ = gateway.kill();
    let _ = gateway.wait();
    drop(stalled);
    // The ring's 8 MiB, a page of history, the stalled stream's send buffer, the events on their
    // way: some 20 MiB. Holding the whole backlog for the stalled stream is 60 MB more.
    assert!(
        growth_kib < 40 * 1024,
        "a backlog of {EVENTS} events of 60 KB grew the gateway by {growth_kib} KiB (from {before} KiB)"
    );
}

/// A socket whose reads stop for good once `stop` is set.
struct StopsReading {
    stream: TcpStream,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl tokio::io::AsyncRead for StopsReading {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return std::task::Poll::Pending;
        }
        std::pin::Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for StopsReading {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn stalled_http2_streams_hold_a_page_and_a_send_buffer_each() {
    let (mut gateway, addr) = gateway_with_big_history().await;
    let before = pgsse_bench_rss(gateway.id());

    // One HTTP/2 connection offering the largest windows there are, as a hostile client may:
    // 150 streams resume from the start, then the client stops reading its socket.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let io = StopsReading {
        stream,
        stop: stop.clone(),
    };
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(i32::MAX as u32)
        .initial_connection_window_size(i32::MAX as u32)
        .handshake::<_, bytes::Bytes>(io)
        .await
        .expect("an HTTP/2 handshake");
    tokio::spawn(connection);
    let mut responses = Vec::new();
    for _ in 0..150 {
        let mut client = timeout(WAIT, client.clone().ready())
            .await
            .expect("room for a stream")
            .unwrap();
        let request = http::Request::get(format!("http://{addr}{STREAM}?lastEventId=0"))
            .body(())
            .unwrap();
        responses.push(client.send_request(request, true).unwrap().0);
    }
    let opened = async {
        while !get(addr, "/metrics")
            .await
            .text()
            .lines()
            .any(|l| l == "pgsse_clients_connected 150")
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(WAIT, opened).await.expect("150 streams open");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // The gateway writes what it can; then the peak of what it holds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak = peak_rss(gateway.id()).await;
    let growth_kib = peak.saturating_sub(before);
    println!("150 stalled HTTP/2 streams: gateway RSS {before} KiB, then at most {peak} KiB");
    let _ = gateway.kill();
    let _ = gateway.wait();
    drop(responses);
    // Each holds a page of history (at most about 256 KiB) and, in h2's buffer, what one
    // stream's socket would hold over HTTP/1.1 (STREAM_SEND_BUFFER, 64 KiB) and one event more:
    // some 67 MiB in all. With h2's own 400 KB per stream it was 133 MiB.
    assert!(
        growth_kib < 100 * 1024,
        "150 stalled HTTP/2 streams grew the gateway by {growth_kib} KiB (from {before} KiB)"
    );
}

/// The resident memory of a process, in KiB.
fn pgsse_bench_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn streams_over_one_http2_connection_count_against_max_streams() {
    let app = spawn_app_with(&[("MAX_STREAMS", "20")]).await;
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let (client, connection) = timeout(WAIT, h2::client::handshake(tcp))
        .await
        .expect("an HTTP/2 handshake in time")
        .expect("the gateway speaks HTTP/2 with prior knowledge");
    tokio::spawn(connection);
    let mut responses = Vec::new();
    for _ in 0..25 {
        let mut client = timeout(WAIT, client.clone().ready())
            .await
            .expect("room for a stream")
            .unwrap();
        let request = http::Request::get(format!("http://{}{STREAM}", app.addr))
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        responses.push(response);
    }
    let mut statuses = Vec::new();
    let mut kept = Vec::new();
    for response in responses {
        let response = timeout(WAIT, response).await.expect("an answer").unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 503 {
            assert_eq!(response.headers()["retry-after"], "5");
        }
        kept.push(response);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(metric(&app, "clients_connected").await, 20.0);
    assert_eq!(get(app.addr, "/healthz").await.status, 200);
    drop(kept);
}

/// A client's connection that writes its first byte alone and the rest after a pause: its HTTP/2
/// preface arrives in two pieces.
struct InPieces {
    socket: TcpStream,
    first: bool,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl InPieces {
    const PAUSE: Duration = Duration::from_millis(300);

    fn new(socket: TcpStream) -> InPieces {
        InPieces {
            socket,
            first: true,
            pause: None,
        }
    }
}

impl AsyncWrite for InPieces {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.first {
            let n = ready!(Pin::new(&mut this.socket).poll_write(cx, &buf[..buf.len().min(1)]))?;
            this.first = false;
            this.pause = Some(Box::pin(tokio::time::sleep(Self::PAUSE)));
            return Poll::Ready(Ok(n));
        }
        if let Some(pause) = &mut this.pause {
            ready!(pause.as_mut().poll(cx));
            this.pause = None;
        }
        Pin::new(&mut this.socket).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

impl AsyncRead for InPieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

#[tokio::test]
async fn an_http2_preface_in_pieces_is_served_and_one_never_finished_is_cut_at_the_head_timeout() {
    let app = spawn_app_with(&[("HEADER_READ_TIMEOUT_SECS", "2")]).await;
    let tcp = InPieces::new(TcpStream::connect(app.addr).await.unwrap());
    let (client, connection) = timeout(WAIT, h2::client::handshake(tcp))
        .await
        .expect("an HTTP/2 handshake in time")
        .expect("the gateway speaks HTTP/2 with prior knowledge");
    tokio::spawn(connection);
    let mut client = timeout(WAIT, client.ready()).await.unwrap().unwrap();
    let request = http::Request::get(format!("http://{}/healthz", app.addr))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = timeout(WAIT, response).await.expect("an answer").unwrap();
    assert_eq!(response.status(), 200);

    // A preface that stops halfway: the connection is closed at the head timeout, unanswered.
    let mut partial = TcpStream::connect(app.addr).await.unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let (_, answer) = until_closed(&mut partial, None).await;
    assert_eq!(String::from_utf8_lossy(&answer), "");
}

#[tokio::test]
async fn at_the_connection_cap_slow_bodies_on_the_reserve_give_their_slots_back_in_seconds() {
    let app = spawn_app_with(&[("MAX_CONNECTIONS", "1")]).await;
    let _stream = app.stream().await;
    // The whole reserve, each with a body that never arrives (the API's timeout is 30 s).
    let mut slow = Vec::new();
    for _ in 0..pgsse::server::RESERVE {
        let mut socket = TcpStream::connect(app.addr).await.unwrap();
        socket
            .write_all(
                b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 100\r\n\r\n{",
            )
            .await
            .unwrap();
        slow.push(socket);
    }
    let started = Instant::now();
    let probe = get(app.addr, "/healthz").await;
    assert_eq!(probe.status, 200);
    assert!(
        started.elapsed() < pgsse::http::RESERVE_TIMEOUT + LATE,
        "the probe waited {:?}",
        started.elapsed()
    );
    for mut socket in slow {
        let (_, answer) = until_closed(&mut socket, None).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
}
