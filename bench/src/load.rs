//! A load case: `CLIENTS x RATE` for the configured seconds, with the gateway's memory and CPU
//! taken around it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::args::Args;
use crate::bench::{self, Load, LoadReport, Phase, Target};
use crate::gateway::{self, Gateway};

/// Clients use their own 8 source addresses per case, so that the ports of one case's closed
/// connections (in TIME_WAIT for a minute) never crowd the next case.
const SOURCES_PER_CASE: usize = 8;

#[derive(Debug, Serialize)]
pub struct LoadResult {
    pub case: String,
    #[serde(flatten)]
    pub report: LoadReport,
    pub gateway_rss_before_kib: Option<u64>,
    pub gateway_rss_connected_kib: Option<u64>,
    pub kib_per_connection: Option<f64>,
    /// When every row had arrived (with stalled clients: while they still stalled).
    pub gateway_rss_drained_kib: Option<u64>,
    /// Gateway CPU while the rows were written and delivered.
    pub gateway_cpu_seconds: Option<f64>,
    pub gateway_cpu_seconds_per_million_deliveries: Option<f64>,
    /// The load generator's own CPU over the same time: it shares the machine.
    pub generator_cpu_seconds: Option<f64>,
    pub machine_busy_percent: Option<f64>,
    /// The machine's CPU use in the second before the case started, when only others ran.
    pub background_busy_percent: Option<f64>,
    /// Changes in the gateway's counters over the case.
    pub counters: BTreeMap<String, f64>,
}

/// Counters whose change over a case is reported.
const COUNTERS: [&str; 5] = [
    "frames_delivered_total",
    "lag_resyncs_total",
    "forced_disconnects_total",
    "replayed_from_ring_total",
    "replayed_from_table_total",
];

#[derive(Default)]
struct Readings {
    rss_before: Option<u64>,
    rss_connected: Option<u64>,
    rss_drained: Option<u64>,
    cpu_start: Option<f64>,
    cpu_end: Option<f64>,
    own_start: Option<f64>,
    own_end: Option<f64>,
    machine_start: Option<(u64, u64)>,
    machine_end: Option<(u64, u64)>,
}

pub async fn run(
    target: &Target,
    gateway: &mut Gateway,
    load: Load,
    case: String,
) -> Result<LoadResult, String> {
    gateway
        .wait_for_clients(0.0, Duration::from_secs(30))
        .await?;
    let quiet = gateway::machine_ticks();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let background = gateway::busy_percent(quiet, gateway::machine_ticks());
    let before = gateway.metrics().await?;
    let mut r = Readings::default();
    let observed = &*gateway;
    let report = bench::run_load(target, &load, |phase| match phase {
        Phase::Connecting => r.rss_before = observed.rss_kib(),
        Phase::Connected => {
            r.rss_connected = observed.rss_kib();
            r.cpu_start = observed.cpu_seconds();
            r.own_start = gateway::cpu_seconds("self");
            r.machine_start = gateway::machine_ticks();
        }
        Phase::Drained => {
            r.rss_drained = observed.rss_kib();
            r.cpu_end = observed.cpu_seconds();
            r.own_end = gateway::cpu_seconds("self");
            r.machine_end = gateway::machine_ticks();
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    let after = gateway.metrics().await?;
    let mut result = result(case, report, r, &before, &after);
    result.background_busy_percent = background;
    Ok(result)
}

fn result(
    case: String,
    report: LoadReport,
    r: Readings,
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
) -> LoadResult {
    let difference = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
    let cpu = difference(r.cpu_start, r.cpu_end);
    let held = report.clients_held.max(1) as f64;
    let kib_per_connection = match (r.rss_before, r.rss_connected) {
        (Some(b), Some(a)) => Some((a as f64 - b as f64) / held),
        _ => None,
    };
    let received = report.gateway.received;
    let counters = COUNTERS
        .iter()
        .map(|name| {
            let key = format!("pgsse_{name}");
            let change = after.get(&key).unwrap_or(&0.0) - before.get(&key).unwrap_or(&0.0);
            (name.to_string(), change)
        })
        .collect();
    LoadResult {
        case,
        gateway_rss_before_kib: r.rss_before,
        gateway_rss_connected_kib: r.rss_connected,
        gateway_rss_drained_kib: r.rss_drained,
        kib_per_connection,
        gateway_cpu_seconds: cpu,
        gateway_cpu_seconds_per_million_deliveries: cpu
            .filter(|_| received > 0)
            .map(|s| s * 1e6 / received as f64),
        generator_cpu_seconds: difference(r.own_start, r.own_end),
        machine_busy_percent: gateway::busy_percent(r.machine_start, r.machine_end),
        background_busy_percent: None,
        counters,
        report,
    }
}

/// The load for a case, its clients on source addresses of their own.
pub fn load(clients: usize, rate: f64, args: &Args, index: usize) -> Load {
    let mut load = Load::new(clients, rate, args.seconds);
    load.writers = args.writers;
    load.sources = SOURCES_PER_CASE;
    load.source_offset = index * SOURCES_PER_CASE;
    load
}
