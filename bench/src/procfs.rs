//! What `/proc` says about a process and the machine: CPU seconds, memory, write calls, load.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (100 on every Linux this runs on).
const TICKS: f64 = 100.0;

/// utime + stime of a process (all its threads), in seconds; 0 once it is gone.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / TICKS
}

/// A `kB` field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`), in MiB.
pub fn status_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Peak resident set (`VmHWM`) in MiB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmHWM")
}

/// Resident set now (`VmRSS`) in MiB.
pub fn rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmRSS")
}

/// Write-type system calls the process made (`syscw` of `/proc/<pid>/io`): for
/// redis-server, one per reply it sends, so it counts round trips.
pub fn write_calls(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("syscw:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Busy CPU seconds of the whole machine so far (all cores), from `/proc/stat`.
pub fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 8 {
        return 0.0;
    }
    let total: f64 = v[..8].iter().sum();
    (total - v[3] - v[4]) / TICKS
}

/// The 1-minute load average.
pub fn loadavg1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Cores the machine spent busy over `window`, measured now.
pub async fn busy_cores(window: Duration) -> f64 {
    let b0 = machine_busy_secs();
    tokio::time::sleep(window).await;
    (machine_busy_secs() - b0) / window.as_secs_f64()
}

/// Waits up to `limit` until the machine is nearly idle (under 0.3 busy cores over 2 s),
/// so other work does not share the cores with a measurement. Returns the busy cores of
/// the last window (what other work was still running when we went on).
pub async fn wait_for_quiet(limit: Duration) -> f64 {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let busy = busy_cores(Duration::from_secs(2)).await;
        if busy < 0.3 || std::time::Instant::now() >= deadline {
            return busy;
        }
    }
}

/// Model name of the CPU.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}
