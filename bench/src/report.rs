//! The results: one Markdown table (pasteable into docs/benchmark.md), notes under it, and JSON.

use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use crate::bench::tally::Latency;
use crate::fleet::FleetResult;
use crate::idle::IdleResult;
use crate::ingest::IngestResult;
use crate::load::LoadResult;
use crate::writers::{Table, WritersResult};

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CaseResult {
    Load(Box<LoadResult>),
    Idle(IdleResult),
    Ingest(IngestResult),
    Fleet(Box<FleetResult>),
    Writers(WritersResult),
    Failed { case: String, error: String },
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub unix_time: u64,
    pub cores: usize,
    pub memory_kib: Option<u64>,
    pub seconds_per_load: f64,
    pub cases: Vec<CaseResult>,
}

pub fn write_json(results: &Results, path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_string_pretty(results).expect("results serialize");
    std::fs::write(path, json + "\n")
}

const HEAD: &str = "\
| case | clients held / failed | rows/s | deliveries received / expected | lost / dup / out of order | gateway latency ms p50 / p90 / p99 / p99.9 / max | bare LISTEN ms p50 / p99 / max | added by the gateway ms p50 / p99 | gateway RSS KiB / conn | gateway CPU s / M deliveries |
|---|---|---|---|---|---|---|---|---|---|
";

/// The table, the writers case's table of its own, and the notes under them.
pub fn table(results: &Results) -> String {
    let mut out = String::from(HEAD);
    let mut own = String::new();
    let mut notes = String::new();
    for case in &results.cases {
        match case {
            CaseResult::Load(r) => load_row(&mut out, &mut notes, r),
            CaseResult::Idle(r) => idle_row(&mut out, &mut notes, r),
            CaseResult::Ingest(r) => ingest_row(&mut out, &mut notes, r),
            CaseResult::Fleet(r) => fleet_row(&mut out, &mut notes, r),
            CaseResult::Writers(r) => writers_table(&mut own, &mut notes, r),
            CaseResult::Failed { case, error } => {
                let _ = writeln!(out, "| {case} | failed: {error} | | | | | | | | |");
            }
        }
    }
    if out == HEAD {
        out.clear();
    } else {
        out.push('\n');
    }
    out + &own + &notes
}

fn writers_table(out: &mut String, notes: &mut String, r: &WritersResult) {
    let tables = [Table::Plain, Table::Notify, Table::Watched, Table::Board];
    let _ = writeln!(
        out,
        "| commits/s, {} connections, {} s each | {} | (c) / (b) |",
        r.connections,
        r.seconds,
        tables.map(Table::label).join(" | ")
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for synchronous_commit in [true, false] {
        let rates = tables.map(|t| number(r.rate(t, synchronous_commit), 0));
        let _ = writeln!(
            out,
            "| synchronous_commit {} | {} | {}% |",
            if synchronous_commit { "on" } else { "off" },
            rates.join(" | "),
            number(r.watched_percent(synchronous_commit), 0)
        );
    }
    out.push('\n');
    let _ = writeln!(
        notes,
        "- writers: {} connections inserted one row per transaction as fast as they could, {} s \
         into each table with each setting after {} s of warm-up, the gateway listening; the \
         watched table took {}% (synchronous_commit on) and {}% (off) of the commits/s of the \
         table whose trigger calls pg_notify.",
        r.connections,
        r.seconds,
        r.warm_up_seconds,
        number(r.watched_percent(true), 0),
        number(r.watched_percent(false), 0)
    );
}

fn load_row(out: &mut String, notes: &mut String, r: &LoadResult) {
    let g = &r.report.gateway;
    let _ = writeln!(
        out,
        "| {} | {} / {} | {:.0} | {} / {} | {} / {} / {} | {} | {} | {} | {} | {} |",
        r.case,
        r.report.clients_held,
        r.report.clients_failed,
        r.report.write_rate,
        g.received,
        g.expected,
        g.lost,
        g.duplicated,
        g.out_of_order,
        latency(&r.report.gateway_latency, true),
        latency(&r.report.floor_latency, false),
        added(&r.report.added_latency),
        number(r.kib_per_connection, 1),
        number(r.gateway_cpu_seconds_per_million_deliveries, 1),
    );
    let mut said = Vec::new();
    if let Some(busy) = r.machine_busy_percent {
        let before = r.background_busy_percent.unwrap_or(f64::NAN);
        said.push(format!(
            "machine {busy:.0}% busy (in the second before: {before:.0}%)"
        ));
    }
    if let (Some(gw), Some(own)) = (r.gateway_cpu_seconds, r.generator_cpu_seconds) {
        said.push(format!("CPU s: gateway {gw:.2}, load generator {own:.2}"));
    }
    for (name, value) in &r.counters {
        if *value > 0.0 && name != "frames_delivered_total" {
            said.push(format!("{name} +{value}"));
        }
    }
    if !r.report.failures.is_empty() {
        said.push(format!("connect failures: {:?}", r.report.failures));
    }
    if r.report.streams_ended > 0 {
        said.push(format!("{} streams ended early", r.report.streams_ended));
    }
    if let Some(s) = &r.report.stalled {
        let d = &s.deliveries;
        let grew = match (r.gateway_rss_connected_kib, r.gateway_rss_drained_kib) {
            (Some(a), Some(b)) => format!("{:.1} MiB", (b as f64 - a as f64) / 1024.0),
            _ => "–".into(),
        };
        said.push(format!(
            "the gateway's RSS grew by {grew} while the rows were written to the others"
        ));
        said.push(format!(
            "the {} stalled clients ({} failed to open) then read {} / {} rows in {:.2} s, \
             lost / dup / out of order {} / {} / {}, {} streams ended by the gateway",
            s.clients_held,
            s.clients_failed,
            d.received,
            d.expected,
            s.catch_up_seconds,
            d.lost,
            d.duplicated,
            d.out_of_order,
            s.streams_ended
        ));
    }
    let floor = &r.report.floor;
    if !floor.clean() {
        let (lost, dup, ooo) = (floor.lost, floor.duplicated, floor.out_of_order);
        said.push(format!("bare LISTEN lost/dup/ooo {lost}/{dup}/{ooo}"));
    }
    let _ = writeln!(notes, "- {}: {}.", r.case, said.join("; "));
}

fn idle_row(out: &mut String, notes: &mut String, r: &IdleResult) {
    let _ = writeln!(
        out,
        "| {} (up to {}) | {} / – | – | – | – | – | – | – | {} | – |",
        match (r.http2, r.kept_alive) {
            (Some(n), _) => format!("idle streams, HTTP/2 ({n} per connection)"),
            (None, true) => "idle connections, kept alive".to_owned(),
            (None, false) => "idle connections".to_owned(),
        },
        r.target,
        r.held,
        number(r.kib_per_connection, 1)
    );
    let mib = |kib: Option<u64>| number(kib.map(|k| k as f64 / 1024.0), 1);
    let last = r.rss_after_leaving_kib.last().copied();
    let returned = match r.rss_returned_after_seconds {
        Some(s) => format!("back within 10% of the growth after {s} s"),
        None => "not back within 10% of the growth".into(),
    };
    let _ = writeln!(
        notes,
        "- idle{}: held {} in {:.1} s (the gateway counted {}); stopped: {}. Gateway RSS {} MiB before, {} MiB holding them; \
         after they left: {returned}, {} MiB after {} s ({} streams still counted).",
        match (r.http2, r.kept_alive) {
            (Some(n), _) => format!(" (streams over HTTP/2, {n} on each connection)"),
            (None, true) => " (each stream on a connection that served GET /healthz first)".into(),
            (None, false) => String::new(),
        },
        r.held,
        r.seconds_to_connect,
        r.clients_connected_held,
        r.stopped_because,
        mib(r.gateway_rss_before_kib),
        mib(r.gateway_rss_held_kib),
        mib(last),
        r.rss_after_leaving_kib.len(),
        r.clients_connected_after
    );
}

fn fleet_row(out: &mut String, notes: &mut String, r: &FleetResult) {
    let d = &r.deliveries;
    let _ = writeln!(
        out,
        "| fleet: {} streams on {} gateways, {} rows/s | {} / {} | {:.0} | {} / {} | {} / {} / {} | {} | – | – | {} | {} |",
        r.target,
        r.gateways,
        r.write_rate.round(),
        r.held,
        r.failed,
        r.write_rate,
        d.received,
        d.expected,
        d.lost,
        d.duplicated,
        d.out_of_order,
        latency(&r.latency, true),
        number(r.kib_per_stream, 1),
        number(r.gateway_cpu_seconds_per_million, 1),
    );
    let _ = writeln!(
        notes,
        "- fleet: {} gateways held {} streams ({} ended early); each gateway had {:.1} \
         connections to PostgreSQL, whose backends used {} s of CPU per second of writing per \
         gateway; PostgreSQL took {:.0} notifying commits/s from 8 connections inserting as fast \
         as they could.",
        r.gateways,
        r.held,
        r.streams_ended,
        r.database_connections_per_gateway,
        match r.database_cpu_per_gateway {
            // Below what the kernel's 10 ms clock tick can show over the run.
            Some(s) if s < 0.001 => "under 0.001".to_owned(),
            other => number(other, 3),
        },
        r.notifying_commits_per_second
    );
}

fn ingest_row(out: &mut String, notes: &mut String, r: &IngestResult) {
    let _ = writeln!(
        out,
        "| ingest ({} notifications) | – | – | {} published | {} lost | – | – | – | – | {} |",
        r.notifications,
        r.published,
        r.notifications - r.published,
        number(r.gateway_cpu_seconds_per_million, 1),
    );
    let _ = writeln!(
        notes,
        "- ingest: the gateway published {:.0} notifications/s ({:.2} s after the commit); the \
         bare LISTEN client received {:.0}/s ({:.2} s); PostgreSQL took {:.2} s to queue them.",
        r.gateway_per_second,
        r.gateway_seconds,
        r.floor_per_second,
        r.floor_seconds,
        r.queue_seconds
    );
}

fn latency(latency: &Option<Latency>, full: bool) -> String {
    let Some(l) = latency else {
        return "–".into();
    };
    let values: Vec<f64> = if full {
        vec![l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms]
    } else {
        vec![l.p50_ms, l.p99_ms, l.max_ms]
    };
    values
        .iter()
        .map(|v| ms(*v))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn added(latency: &Option<Latency>) -> String {
    latency.as_ref().map_or("–".into(), |l| {
        format!("{} / {}", ms(l.p50_ms), ms(l.p99_ms))
    })
}

/// Milliseconds with about three significant digits.
fn ms(value: f64) -> String {
    match value.abs() {
        v if v < 10.0 => format!("{value:.2}"),
        v if v < 100.0 => format!("{value:.1}"),
        _ => format!("{value:.0}"),
    }
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or("–".into(), |v| format!("{v:.decimals$}"))
}
