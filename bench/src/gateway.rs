//! Watching the gateway from outside: its memory and CPU time from /proc (when its pid is
//! known), and its counters from `/metrics` over one keep-alive connection, which keeps working
//! when the gateway can accept no more connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::bench::net::HttpConnection;

pub struct Gateway {
    pid: Option<u32>,
    http: HttpConnection,
}

impl Gateway {
    /// Connects and waits (up to a minute) until `/readyz` answers 200.
    pub async fn connect(addr: SocketAddr, pid: Option<u32>) -> Result<Gateway, String> {
        for _ in 0..600 {
            if let Ok(mut http) = HttpConnection::open(addr).await {
                if let Ok((200, _)) = http.get("/readyz").await {
                    return Ok(Gateway { pid, http });
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("the gateway at {addr} is not ready after a minute"))
    }

    /// Every `pgsse_*` sample in `/metrics`.
    pub async fn metrics(&mut self) -> Result<HashMap<String, f64>, String> {
        // The gateway closes a kept-alive connection that has been idle for its header-read
        // timeout; one that was closed is opened again.
        let answer = match self.http.get("/metrics").await {
            Ok(answer) => Ok(answer),
            Err(_) => match HttpConnection::open(self.http.addr()).await {
                Ok(http) => {
                    self.http = http;
                    self.http.get("/metrics").await
                }
                Err(err) => Err(err),
            },
        };
        let (status, body) = answer.map_err(|e| format!("GET /metrics: {e}"))?;
        if status != 200 {
            return Err(format!("GET /metrics: status {status}"));
        }
        Ok(body
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (name, value) = line.split_once(' ')?;
                Some((name.to_owned(), value.trim().parse().ok()?))
            })
            .collect())
    }

    /// One counter or gauge, e.g. `events_received_total` (0 when absent).
    pub async fn metric(&mut self, name: &str) -> Result<f64, String> {
        let metrics = self.metrics().await?;
        Ok(metrics
            .get(&format!("pgsse_{name}"))
            .copied()
            .unwrap_or(0.0))
    }

    /// Waits (up to `wait`) until the gateway has at most `clients` streams open.
    pub async fn wait_for_clients(&mut self, clients: f64, wait: Duration) -> Result<f64, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let connected = self.metric("clients_connected").await?;
            if connected <= clients || tokio::time::Instant::now() >= deadline {
                return Ok(connected);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid?)
    }

    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(&self.pid?.to_string())
    }

    /// File descriptors the gateway has open, and its limit.
    pub fn files(&self) -> Option<(usize, u64)> {
        let pid = self.pid?;
        let open = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        let soft = line.split_whitespace().nth(3)?.parse().ok()?;
        Some((open, soft))
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time of a process (`self` for this one), from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

/// Busy and total CPU time of the whole machine, in clock ticks, from /proc/stat.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let values: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    // idle and iowait are the 4th and 5th.
    let idle = values.get(3)? + values.get(4)?;
    Some((total - idle, total))
}

/// The machine's CPU use between two `machine_ticks` readings, in percent of all cores.
pub fn busy_percent(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let ((busy0, total0), (busy1, total1)) = (before?, after?);
    let total = total1.checked_sub(total0).filter(|t| *t > 0)?;
    Some(100.0 * (busy1 - busy0) as f64 / total as f64)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}
