//! What each client received, checked row by row, and latency percentiles over all of them.
//!
//! Rows are named `bench-{tag}-{seq}-{sent}`: the run's tag (so rows of another run are told
//! apart), the row's number in the run, and the time its INSERT was sent in microseconds since
//! the epoch. The load generator and the gateway share one clock: they run on one machine.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Microseconds since the epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_micros() as u64
}

/// A row as the writer named it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub tag: u32,
    pub seq: u64,
    pub sent_us: u64,
}

impl Row {
    pub fn name(&self) -> String {
        format!("bench-{}-{}-{}", self.tag, self.seq, self.sent_us)
    }

    pub fn parse(name: &str) -> Option<Row> {
        let mut parts = name.strip_prefix("bench-")?.split('-');
        let row = Row {
            tag: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
            sent_us: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(row)
    }
}

/// One client's record of a run.
#[derive(Debug)]
pub struct Tally {
    tag: u32,
    rows: u64,
    /// A bit per row of the run: received yet?
    seen: Vec<u64>,
    last_id: i64,
    /// Rows of this run received, each counted once.
    pub received: u64,
    pub duplicated: u64,
    /// Events whose id was not above the one before.
    pub out_of_order: u64,
    /// Events that are not rows of this run.
    pub foreign: u64,
    /// Each row received: its number and its receive time minus send time.
    pub samples: Vec<Sample>,
    /// Whether the stream ended before the run did.
    pub ended: bool,
}

impl Tally {
    pub fn new(tag: u32, rows: u64) -> Tally {
        Tally {
            tag,
            rows,
            seen: vec![0; rows.div_ceil(64) as usize],
            last_id: i64::MIN,
            received: 0,
            duplicated: 0,
            out_of_order: 0,
            foreign: 0,
            samples: Vec::new(),
            ended: false,
        }
    }

    /// Records an event received at `received_us`; returns whether it was a row of this run
    /// not seen before. Blocks with neither an id nor a name (comments) are not events.
    pub fn record(&mut self, id: Option<i64>, name: Option<&str>, received_us: u64) -> bool {
        if id.is_none() && name.is_none() {
            return false;
        }
        let row = name.and_then(Row::parse).filter(|r| r.tag == self.tag);
        let Some(row) = row.filter(|r| r.seq < self.rows) else {
            self.foreign += 1;
            return false;
        };
        let (word, bit) = ((row.seq / 64) as usize, 1u64 << (row.seq % 64));
        if self.seen[word] & bit != 0 {
            self.duplicated += 1;
            return false;
        }
        self.seen[word] |= bit;
        self.received += 1;
        if let Some(id) = id {
            if id <= self.last_id {
                self.out_of_order += 1;
            }
            self.last_id = self.last_id.max(id);
        }
        let latency = received_us.saturating_sub(row.sent_us);
        self.samples.push(Sample {
            seq: row.seq as u32,
            latency_us: latency.min(u64::from(u32::MAX)) as u32,
        });
        true
    }

    /// Each row's latency by row number (`None` for rows not received), for comparing clients
    /// with this one row by row.
    pub fn by_row(&self) -> Vec<Option<u32>> {
        let mut rows = vec![None; self.rows as usize];
        for sample in &self.samples {
            rows[sample.seq as usize] = Some(sample.latency_us);
        }
        rows
    }
}

/// One row received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub seq: u32,
    pub latency_us: u32,
}

/// Deliveries over all clients of a run.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Deliveries {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub foreign: u64,
}

impl Deliveries {
    /// Adds a client that should have received `rows` rows.
    pub fn add(&mut self, tally: &Tally, rows: u64) {
        self.expected += rows;
        self.received += tally.received;
        self.lost += rows.saturating_sub(tally.received);
        self.duplicated += tally.duplicated;
        self.out_of_order += tally.out_of_order;
        self.foreign += tally.foreign;
    }

    /// Adds another count of deliveries.
    pub fn merge(&mut self, other: &Deliveries) {
        self.expected += other.expected;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.foreign += other.foreign;
    }

    /// No row lost, duplicated or out of order.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.out_of_order == 0
    }
}

/// Latency percentiles, in milliseconds (nearest rank, exact). Differences of latencies may be
/// negative.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(mut samples_us: Vec<i64>) -> Option<Latency> {
        if samples_us.is_empty() {
            return None;
        }
        samples_us.sort_unstable();
        let n = samples_us.len();
        let at = |q: f64| {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            samples_us[rank - 1] as f64 / 1000.0
        };
        Some(Latency {
            samples: n as u64,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
        })
    }
}

/// Every client of a run together.
#[derive(Debug, Default)]
pub struct Summary {
    pub deliveries: Deliveries,
    /// Receive time minus send time.
    pub latency: Option<Latency>,
    /// Each delivery's latency minus the floor's latency for the same row: what the gateway
    /// adds to what PostgreSQL costs anyway.
    pub added: Option<Latency>,
    /// Clients whose stream ended early.
    pub ended: usize,
}

/// Sums up the clients' tallies of a run of `rows` rows; `floor` is the floor's latency by row.
pub fn summarize(tallies: Vec<Tally>, rows: u64, floor: &[Option<u32>]) -> Summary {
    let mut summary = Summary::default();
    let total = tallies.iter().map(|t| t.samples.len()).sum();
    let mut latencies = Vec::with_capacity(total);
    let mut added = Vec::with_capacity(total);
    for tally in tallies {
        summary.deliveries.add(&tally, rows);
        summary.ended += usize::from(tally.ended);
        for sample in &tally.samples {
            let latency = i64::from(sample.latency_us);
            latencies.push(latency);
            if let Some(Some(floor)) = floor.get(sample.seq as usize) {
                added.push(latency - i64::from(*floor));
            }
        }
    }
    summary.latency = Latency::of(latencies);
    summary.added = Latency::of(added);
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(seq: u64) -> String {
        Row {
            tag: 9,
            seq,
            sent_us: 1_000,
        }
        .name()
    }

    #[test]
    fn a_tally_counts_each_row_once_and_notices_order_duplicates_and_strangers() {
        let mut tally = Tally::new(9, 4);
        assert!(tally.record(Some(10), Some(&name(0)), 1_500));
        assert!(tally.record(Some(12), Some(&name(2)), 1_700));
        assert!(!tally.record(Some(12), Some(&name(2)), 1_700));
        assert!(tally.record(Some(11), Some(&name(1)), 1_800));
        assert!(!tally.record(Some(13), Some("board"), 1_800));
        assert!(!tally.record(None, None, 1_800));
        let mut all = Deliveries::default();
        all.add(&tally, 4);
        assert_eq!(
            (
                all.received,
                all.lost,
                all.duplicated,
                all.out_of_order,
                all.foreign
            ),
            (3, 1, 1, 1, 1)
        );
        let latencies: Vec<u32> = tally.samples.iter().map(|s| s.latency_us).collect();
        assert_eq!(latencies, [500, 700, 800]);
        assert_eq!(tally.by_row(), [Some(500), Some(800), Some(700), None]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let latency = Latency::of((1..=1000).map(|ms| ms * 1000).collect()).unwrap();
        assert_eq!(
            (
                latency.p50_ms,
                latency.p99_ms,
                latency.p999_ms,
                latency.max_ms
            ),
            (500.0, 990.0, 999.0, 1000.0)
        );
        assert_eq!(Row::parse(&name(5)).map(|r| r.seq), Some(5));
    }

    #[test]
    fn added_latency_is_taken_row_by_row_against_the_floor() {
        let mut client = Tally::new(9, 2);
        client.record(Some(1), Some(&name(0)), 1_900);
        client.record(Some(2), Some(&name(1)), 1_300);
        let floor = [Some(400), Some(500)];
        let summary = summarize(vec![client], 2, &floor);
        let added = summary.added.unwrap();
        assert_eq!((added.p50_ms, added.max_ms), (-0.2, 0.5));
        assert_eq!(summary.latency.unwrap().max_ms, 0.9);
    }
}
