//! The lossless-delivery checker: clients that record every event they receive across
//! reconnects (resuming with Last-Event-ID as a browser does), and a comparison of what each
//! received with the event table: nothing lost, nothing duplicated, nothing unexpected, ids
//! strictly increasing.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::time::{timeout, Instant};

use super::sse::{SseClient, SseEvent};
use super::{Sql, WAIT};

/// How a resuming client tells the server where it stands.
#[derive(Clone, Copy, Debug)]
pub enum Resume {
    /// The `Last-Event-ID` header, as a browser's `EventSource` sends it.
    Header,
    /// `?lastEventId=`, as a page does on a fresh load.
    Query,
}

/// A client that keeps what it received and reconnects where it left off.
pub struct Recorder {
    pub addr: SocketAddr,
    /// Path and query without `lastEventId`, e.g. `/sse/notifications/?events=newPath`.
    path: String,
    client: Option<SseClient>,
    /// Every event received, `resync` included, over all connections.
    pub received: Vec<SseEvent>,
    /// The last id the client was told (events, id-only frames and resyncs alike).
    pub last_event_id: Option<String>,
    pub connections: usize,
}

impl Recorder {
    /// Connects after `start` (None: live, from whatever comes next).
    pub async fn connect(addr: SocketAddr, path: &str, start: Option<i64>) -> Recorder {
        let mut recorder = Recorder {
            addr,
            path: path.to_owned(),
            client: None,
            received: Vec::new(),
            last_event_id: start.map(|id| id.to_string()),
            connections: 0,
        };
        recorder.open(Resume::Query).await;
        recorder
    }

    /// Drops the connection and opens a new one to `addr` from the last id received.
    pub async fn reconnect(&mut self, addr: SocketAddr, how: Resume) {
        self.disconnect();
        self.addr = addr;
        self.open(how).await;
    }

    /// Drops the connection, keeping the last id the stream told it (as a browser does, id-only
    /// blocks included), for a later [`Recorder::reconnect`].
    pub fn disconnect(&mut self) {
        if let Some(client) = self.client.take() {
            self.last_event_id = client.last_event_id.or(self.last_event_id.take());
        }
    }

    /// Reads `n` more events, reconnecting by header whenever the server ends the stream.
    pub async fn read(&mut self, n: usize) {
        let target = self.events().count() + n;
        while self.events().count() < target {
            self.next().await;
        }
    }

    /// Reads until an event with id `last` or above has arrived.
    pub async fn read_through(&mut self, last: i64) {
        while self.last_id() < last {
            self.next().await;
        }
    }

    /// The events received, without `resync` frames.
    /// The local address of the current connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.client.as_ref().expect("connected").local_addr()
    }

    pub fn events(&self) -> impl Iterator<Item = &SseEvent> {
        self.received.iter().filter(|e| e.event != "resync")
    }

    pub fn last_id(&self) -> i64 {
        self.last_event_id
            .as_deref()
            .map_or(0, |id| id.parse().expect("numeric ids"))
    }

    /// Waits for the next event on the open stream, and records it.
    async fn next(&mut self) {
        let client = self.client.as_mut().expect("connected");
        match client.event_within(WAIT).await {
            Some(event) => {
                self.last_event_id = client.last_event_id.clone();
                self.received.push(event);
            }
            None if client.ended => {
                self.last_event_id = client.last_event_id.clone().or(self.last_event_id.take());
                self.open(Resume::Header).await;
            }
            None => panic!(
                "no event within {WAIT:?} after id {:?}; stream so far: {:?}",
                self.last_event_id,
                client.text()
            ),
        }
    }

    /// Opens a stream from `last_event_id`, retrying while the server is unreachable.
    async fn open(&mut self, how: Resume) {
        let deadline = Instant::now() + WAIT;
        loop {
            let (path, header) = match (&self.last_event_id, how) {
                (Some(id), Resume::Header) => (self.path.clone(), Some(id.clone())),
                (Some(id), Resume::Query) => (with_param(&self.path, "lastEventId", id), None),
                (None, _) => (self.path.clone(), None),
            };
            let headers: Vec<(&str, &str)> = header
                .iter()
                .map(|id| ("Last-Event-ID", id.as_str()))
                .collect();
            let attempt = timeout(WAIT, SseClient::try_connect(self.addr, &path, &headers)).await;
            match attempt {
                Ok(Some(client)) if client.status == 200 => {
                    self.client = Some(client);
                    self.connections += 1;
                    return;
                }
                Ok(Some(client)) => {
                    panic!("reconnect answered {}: {}", client.status, client.text())
                }
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                _ => panic!("cannot reconnect to {} within {WAIT:?}", self.addr),
            }
        }
    }
}

fn with_param(path: &str, name: &str, value: &str) -> String {
    let separator = if path.contains('?') { '&' } else { '?' };
    format!("{path}{separator}{name}={value}")
}

/// What a client received compared with the event table.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub lost: Vec<i64>,
    pub duplicated: Vec<i64>,
    pub unexpected: Vec<i64>,
    pub out_of_order: Vec<i64>,
}

impl Report {
    pub fn assert_clean(&self, who: &str) {
        assert_eq!(
            self,
            &Report::default(),
            "{who} did not receive exactly the event log"
        );
    }
}

/// The event table's events with ids in `after+1..=through` that a stream of `user` (with no
/// clientId or sessionId) may receive, broadcasts and the user's own, as (kind, data).
pub async fn table_for(
    sql: &Sql,
    user: Option<&str>,
    after: i64,
    through: i64,
) -> BTreeMap<i64, (String, Value)> {
    sql.query(
        "select id, kind, payload from pgsse.event \
         where id > $1 and id <= $2 \
           and (recipient is null or recipient = $3) and client_id is null and session_id is null \
         order by id",
        &[&after, &through, &user],
    )
    .await
    .iter()
    .map(|row| (row.get(0), (row.get(1), row.get(2))))
    .collect()
}

/// Compares `received` (events only) with `expected`, which is what the client should have got.
pub fn compare(received: &[&SseEvent], expected: &BTreeMap<i64, (String, Value)>) -> Report {
    let mut report = Report::default();
    let mut seen = HashMap::new();
    let mut previous = i64::MIN;
    for event in received {
        let id = event.id();
        if id <= previous {
            report.out_of_order.push(id);
        }
        previous = previous.max(id);
        if *seen.entry(id).and_modify(|n| *n += 1).or_insert(1) == 2 {
            report.duplicated.push(id);
        }
        match expected.get(&id) {
            Some((kind, data)) if *kind == event.event && *data == event.json() => {}
            _ => report.unexpected.push(id),
        }
    }
    report.lost = expected
        .keys()
        .filter(|id| !seen.contains_key(id))
        .copied()
        .collect();
    report
}

/// Checks a recorder that started after `after` against the table up to `through`.
pub async fn check(sql: &Sql, recorder: &Recorder, after: i64, through: i64) -> Report {
    check_for(sql, recorder, None, after, through).await
}

/// Like [`check`], for a stream of `user`: it must get the broadcasts and its own events only.
pub async fn check_for(
    sql: &Sql,
    recorder: &Recorder,
    user: Option<&str>,
    after: i64,
    through: i64,
) -> Report {
    let expected = table_for(sql, user, after, through).await;
    let received: Vec<&SseEvent> = recorder.events().filter(|e| e.id() <= through).collect();
    compare(&received, &expected)
}
