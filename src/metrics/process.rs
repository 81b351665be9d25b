//! The `process_*` metrics that Prometheus' client libraries export, under the same names, read
//! from `/proc/self` on each scrape. prometheus-client has no collector of its own for them; the
//! reading of `/proc` is the procfs crate's.

use procfs::process::LimitValue;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// The collector; it holds nothing, each scrape reads afresh. Help texts end in a full stop
/// here: a collector writes them as given, where the registry adds one.
#[derive(Debug)]
pub struct Process;

/// What `/proc/self` says of the process.
struct Figures {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    open_fds: i64,
    /// `None` when the soft limit is unlimited.
    max_fds: Option<i64>,
    start_time_seconds: f64,
}

fn read() -> procfs::ProcResult<Figures> {
    let me = procfs::process::Process::myself()?;
    let stat = me.stat()?;
    let ticks = procfs::ticks_per_second() as f64;
    let max_fds = match me.limits()?.max_open_files.soft_limit {
        LimitValue::Value(max) => Some(max as i64),
        LimitValue::Unlimited => None,
    };
    Ok(Figures {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_bytes: (stat.rss * procfs::page_size()) as i64,
        virtual_bytes: stat.vsize as i64,
        open_fds: me.fd_count()? as i64,
        max_fds,
        start_time_seconds: procfs::boot_time_secs()? as f64 + stat.starttime as f64 / ticks,
    })
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        match read() {
            Ok(figures) => figures.encode(&mut encoder),
            Err(err) => {
                log::warn!("metrics: process figures left out: {err}");
                Ok(())
            }
        }
    }
}

impl Figures {
    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let seconds = Some(&Unit::Seconds);
        let cpu = ConstCounter::new(self.cpu_seconds);
        let help = "Total user and system CPU time spent in seconds.";
        cpu.encode(encoder.encode_descriptor("process_cpu", help, seconds, cpu.metric_type())?)?;
        for (name, help, value) in self.gauges() {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let start = ConstGauge::new(self.start_time_seconds);
        let help = "Start time of the process since unix epoch in seconds.";
        let descriptor =
            encoder.encode_descriptor("process_start_time", help, seconds, start.metric_type())?;
        start.encode(descriptor)
    }

    /// The gauges in whole numbers: name, help, and value if there is one.
    fn gauges(&self) -> [(&'static str, &'static str, Option<i64>); 4] {
        [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                Some(self.resident_bytes),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                Some(self.virtual_bytes),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                Some(self.open_fds),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors (the soft limit).",
                self.max_fds,
            ),
        ]
    }
}
