//! The writer: inserts boards over plain SQL at a steady rate, each named after the time its
//! INSERT was sent, the way an application would (one autocommitted INSERT per row).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::future::try_join_all;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls, Statement};

use super::tally::{now_us, Row};

/// A tag that tells this run's rows from any other's.
pub fn fresh_tag() -> u32 {
    // RandomState is randomly seeded: a source of randomness without a crate.
    RandomState::new().hash_one(now_us()) as u32
}

/// Connections ready to insert.
pub struct Writer {
    connections: Vec<(Client, Statement)>,
    creator: i64,
    tag: u32,
}

impl Writer {
    pub async fn connect(
        url: &str,
        connections: usize,
        tag: u32,
    ) -> Result<Writer, tokio_postgres::Error> {
        let mut opened = Vec::new();
        for _ in 0..connections.max(1) {
            let client = connect(url).await?;
            let insert = client
                .prepare("insert into board(name, creator_id) values ($1, $2)")
                .await?;
            opened.push((client, insert));
        }
        let creator = opened[0]
            .0
            .query_one(
                "insert into app_user(username) values ('bench') \
                 on conflict (username) do update set username = excluded.username returning id",
                &[],
            )
            .await?
            .get(0);
        Ok(Writer {
            connections: opened,
            creator,
            tag,
        })
    }

    /// Inserts `rows` rows, row `n` due `n / rate` seconds after the start. A row due while
    /// every connection is busy goes as soon as one is free (its name says when). Returns the
    /// rows written.
    pub async fn write(&self, rows: u64, rate: f64) -> Result<u64, tokio_postgres::Error> {
        let next = AtomicU64::new(0);
        let start = Instant::now();
        let each = self.connections.iter().map(|(client, insert)| async {
            loop {
                let seq = next.fetch_add(1, Relaxed);
                if seq >= rows {
                    return Ok::<(), tokio_postgres::Error>(());
                }
                tokio::time::sleep_until(start + Duration::from_secs_f64(seq as f64 / rate)).await;
                let row = Row {
                    tag: self.tag,
                    seq,
                    sent_us: now_us(),
                };
                client
                    .execute(insert, &[&row.name(), &self.creator])
                    .await?;
            }
        });
        try_join_all(each).await?;
        Ok(rows)
    }
}

/// Connects to `url`, driving the connection in the background.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            log::warn!("bench: a writer connection failed: {err}");
        }
    });
    Ok(client)
}
