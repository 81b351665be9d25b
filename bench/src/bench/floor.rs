//! The floor: a bare tokio-postgres connection that `LISTEN`s on the gateway's channel and
//! records the same rows the SSE clients do. Its latency is what PostgreSQL alone costs; the
//! gateway's own cost is the difference.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use pgsse::listener::CHANNEL;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::sse::{board_name, json_int_field};
use super::tally::{now_us, Deliveries, Latency, Tally};

pub struct Floor {
    /// Kept so that the connection stays open.
    _client: Client,
    task: JoinHandle<Tally>,
    stop: oneshot::Sender<()>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    /// New rows of the run received.
    delivered: AtomicU64,
    /// Every notification on the channel, rows of the run or not.
    notifications: AtomicU64,
    /// When the last notification arrived, in microseconds since the epoch.
    last_us: AtomicU64,
}

impl Floor {
    /// Connects and `LISTEN`s; on return every later notification is recorded.
    pub async fn listen(url: &str, rows: u64, tag: u32) -> Result<Floor, tokio_postgres::Error> {
        let (client, mut connection) = tokio_postgres::connect(url, NoTls).await?;
        let counts = Arc::new(Counts::default());
        let (stop, mut stopped) = oneshot::channel();
        let recorded = counts.clone();
        let task = tokio::spawn(async move {
            let mut tally = Tally::new(tag, rows);
            loop {
                let message = tokio::select! {
                    message = poll_fn(|cx| connection.poll_message(cx)) => message,
                    _ = &mut stopped => break,
                };
                match message {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        recorded.record(&mut tally, n.payload().as_bytes())
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        log::warn!("bench: the LISTEN connection failed: {err}");
                        tally.ended = true;
                        break;
                    }
                    None => break,
                }
            }
            tally
        });
        client.batch_execute(&format!("listen {CHANNEL}")).await?;
        Ok(Floor {
            _client: client,
            task,
            stop,
            counts,
        })
    }

    pub fn delivered(&self) -> u64 {
        self.counts.delivered.load(Relaxed)
    }

    pub fn notifications(&self) -> u64 {
        self.counts.notifications.load(Relaxed)
    }

    /// When the last notification arrived (microseconds since the epoch; 0 before the first).
    pub fn last_us(&self) -> u64 {
        self.counts.last_us.load(Relaxed)
    }

    /// Stops listening; what was received of `rows` rows, its latency, and its latency by row.
    pub async fn finish(self, rows: u64) -> (Deliveries, Option<Latency>, Vec<Option<u32>>) {
        let _ = self.stop.send(());
        let tally = self.task.await.expect("the LISTEN task does not panic");
        let mut deliveries = Deliveries::default();
        deliveries.add(&tally, rows);
        let latencies = tally.samples.iter().map(|s| i64::from(s.latency_us));
        (deliveries, Latency::of(latencies.collect()), tally.by_row())
    }
}

impl Counts {
    fn record(&self, tally: &mut Tally, payload: &[u8]) {
        let now = now_us();
        self.notifications.fetch_add(1, Relaxed);
        self.last_us.store(now, Relaxed);
        let id = json_int_field(payload, b"id");
        let name = board_name(payload);
        if tally.record(id, name, now) {
            self.delivered.fetch_add(1, Relaxed);
        }
    }
}
