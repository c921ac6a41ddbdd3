//! This process's CPU time and resident memory, read from `/proc` (Linux; zeros elsewhere).
//! The worker reports them on the Busy page and `/metrics`; the HPA lesson reads them too.

use std::time::Instant;

/// Resident memory and CPU time of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessUsage {
    /// `VmRSS` in KiB.
    pub rss_kb: u64,
    /// User + system CPU seconds since start.
    pub cpu_secs: f64,
}

impl ProcessUsage {
    /// This process's usage (zeros where unavailable).
    pub fn read() -> Self {
        Self::read_from("self").unwrap_or_default()
    }

    /// Another process's usage (`None` once it is gone): what metrics-server samples for a
    /// pod, used by the local autoscaling drill.
    pub fn of_pid(pid: u32) -> Option<Self> {
        Self::read_from(&pid.to_string())
    }

    /// Reads `/proc/<which>/status` and `/proc/<which>/stat`; `None` if the process is gone.
    fn read_from(which: &str) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{which}/stat")).ok()?;
        let rss_kb = std::fs::read_to_string(format!("/proc/{which}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
            })
            .unwrap_or(0);
        // Fields after the parenthesised command name (which may contain spaces); utime and
        // stime are the 14th and 15th fields overall, i.e. the 12th and 13th after it.
        let cpu_secs = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let ticks: f64 =
                    f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
                Some(ticks / clock_ticks())
            })
            .unwrap_or(0.0);
        Some(ProcessUsage { rss_kb, cpu_secs })
    }
}

#[allow(
    unsafe_code,
    reason = "sysconf is a plain libc query with no memory effects"
)]
fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant; it has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU time the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`); zero where the
/// clock is unavailable. Lets work be sized in CPU time rather than wall time, which on a busy
/// machine also counts the time other processes had the core.
#[allow(
    unsafe_code,
    reason = "clock_gettime writes only into the timespec we pass"
)]
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// CPU use between two readings of (wall clock, CPU seconds), in percent of one core.
pub fn cpu_percent(prev: (Instant, f64), now: (Instant, f64)) -> f64 {
    let wall = now.0.duration_since(prev.0).as_secs_f64();
    if wall <= 0.0 {
        0.0
    } else {
        ((now.1 - prev.1) / wall * 100.0).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reads_own_usage() {
        let u = ProcessUsage::read();
        assert!(u.rss_kb > 0);
        assert!(u.cpu_secs >= 0.0);
    }

    #[test]
    fn thread_cpu_time_advances_with_work() {
        let t0 = thread_cpu_time();
        let mut x = 0u64;
        while thread_cpu_time() - t0 < Duration::from_millis(20) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(thread_cpu_time() - t0 >= Duration::from_millis(20), "{x}");
    }

    #[test]
    fn reads_another_process_and_knows_when_it_is_gone() {
        let me = ProcessUsage::of_pid(std::process::id()).unwrap();
        assert!(me.rss_kb > 0);
        assert_eq!(ProcessUsage::of_pid(u32::MAX), None);
    }

    #[test]
    fn percent_of_one_core() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(cpu_percent((t0, 1.0), (t1, 2.0)), 50.0);
        assert_eq!(cpu_percent((t0, 1.0), (t0, 2.0)), 0.0);
    }
}
