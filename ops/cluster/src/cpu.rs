//! CPU usage of processes, measured as metrics-server does for pods: the CPU time consumed
//! between two scrapes divided by the time between them, in millicores. A process seen for
//! the first time has no value until the next scrape.

use std::collections::HashMap;
use std::time::Instant;

/// User + system CPU seconds a process has used (`None` once it is gone).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    service_runtime::usage::ProcessUsage::of_pid(pid).map(|u| u.cpu_secs)
}

/// Remembers each process's last reading.
#[derive(Debug, Default)]
pub struct CpuMeter {
    last: HashMap<u32, (Instant, f64)>,
}

impl CpuMeter {
    /// Scrapes `pids` now: millicores since the previous scrape of each, `None` for a
    /// process seen for the first time (or gone). Forgets processes not listed.
    pub fn scrape(&mut self, pids: &[u32]) -> HashMap<u32, Option<f64>> {
        let now = Instant::now();
        let mut out = HashMap::new();
        let mut next = HashMap::new();
        for &pid in pids {
            let Some(cpu) = cpu_seconds(pid) else {
                out.insert(pid, None);
                continue;
            };
            let usage = self.last.get(&pid).and_then(|&(at, before)| {
                let wall = now.duration_since(at).as_secs_f64();
                (wall > 0.0).then(|| ((cpu - before) / wall * 1000.0).max(0.0))
            });
            out.insert(pid, usage);
            next.insert(pid, (now, cpu));
        }
        self.last = next;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_busy_thread_in_millicores() {
        let me = std::process::id();
        let mut meter = CpuMeter::default();
        assert_eq!(meter.scrape(&[me])[&me], None, "first scrape has no window");
        // Spin until this process has used 50 ms more CPU (however long a loaded machine
        // takes to give it that): the scrape must see that work, and no more than the cores.
        let before = cpu_seconds(me).unwrap();
        let mut x = 0u64;
        while cpu_seconds(me).unwrap() - before < 0.05 {
            for _ in 0..10_000 {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
        }
        std::hint::black_box(x);
        let m = meter.scrape(&[me])[&me].unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(m > 0.0 && m <= cores * 1000.0 + 100.0, "measured {m} m");
        assert_eq!(meter.scrape(&[u32::MAX])[&u32::MAX], None);
    }
}
