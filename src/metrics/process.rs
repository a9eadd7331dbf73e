//! The process's own figures, under the names every Prometheus client library gives them
//! (`process_resident_memory_bytes`, `process_cpu_seconds_total`, `process_open_fds`, …, so
//! existing dashboards and alerts find them), and `rallypoint_build_info{version}`. Read from
//! `/proc/self` when `/metrics` is scraped; on a system without `/proc` they are left out.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Scrape;

/// `rallypoint_build_info{version="…"} 1`, in the prefixed registry.
pub fn register_build_info(registry: &mut Registry) {
    registry.register_collector(Box::new(BuildInfo));
}

/// A registry without the `rallypoint_` prefix, holding the `process_*` metrics.
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Process));
    registry
}

#[derive(Debug)]
struct BuildInfo;

impl Collector for BuildInfo {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        Scrape(encoder).gauges(
            "build_info",
            "The running version (always 1)",
            "version",
            [(env!("CARGO_PKG_VERSION"), 1)],
        )
    }
}

#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Some(figures) = Figures::read() else {
            return Ok(());
        };
        let mut gauge = |name: &str, help: &str, value: f64| {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)
        };
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            figures.resident_bytes,
        )?;
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            figures.virtual_bytes,
        )?;
        gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            figures.open_fds,
        )?;
        gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            figures.max_fds,
        )?;
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            figures.start_time,
        )?;
        let cpu = ConstCounter::new(figures.cpu_seconds);
        // Written `process_cpu_seconds_total`: a counter's samples take the suffix.
        let metric = encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?;
        cpu.encode(metric)
    }
}

struct Figures {
    resident_bytes: f64,
    virtual_bytes: f64,
    cpu_seconds: f64,
    open_fds: f64,
    max_fds: f64,
    start_time: f64,
}

impl Figures {
    fn read() -> Option<Figures> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command (which may hold spaces), from field 3 on.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        // SAFETY: sysconf only reads a configuration value.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK) as f64,
                libc::sysconf(libc::_SC_PAGESIZE) as f64,
            )
        };
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given.
        let max_fds = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
            0 => limit.rlim_cur as f64,
            _ => return None,
        };
        Some(Figures {
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            start_time: boot + field(22)? / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
            open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as f64,
            max_fds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_figures_are_this_process() {
        let f = Figures::read().expect("/proc/self is readable on Linux");
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        // Resident memory moves a little between the two reads.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
        assert!((f.resident_bytes - pages * page).abs() < 64.0 * 1024.0 * 1024.0);
        assert!(f.resident_bytes > 1024.0 * 1024.0);
        // At least stdin, stdout, stderr and the directory being read.
        assert!(f.open_fds >= 4.0 && f.max_fds >= f.open_fds);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(f.start_time <= now + 1.0 && f.start_time > now - 86_400.0);
        assert!(f.cpu_seconds >= 0.0);
    }
}
