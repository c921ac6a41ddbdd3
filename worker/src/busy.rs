//! The jobs running in this process right now: what the Busy page lists (the work hash), what
//! TTIN logs, and what a stop pushes back when the deadline comes.

use crate::store::fetch::Lease;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::task::AbortHandle;

/// A job being executed.
#[derive(Debug)]
struct Running {
    lease: Lease,
    run_at: i64,
    class: String,
    jid: String,
    abort: Option<AbortHandle>,
}

/// The registry of running jobs, keyed by slot number.
#[derive(Debug, Default)]
pub struct Busy {
    running: Mutex<HashMap<u64, Running>>,
    next_slot: AtomicU64,
}

/// A running job's place in [`Busy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot(u64);

impl Busy {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Running>> {
        // A panic elsewhere while holding the lock leaves a consistent map behind.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a job that starts running at `run_at` (epoch seconds).
    pub fn start(&self, lease: Lease, run_at: i64, class: String, jid: String) -> Slot {
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().insert(
            slot,
            Running {
                lease,
                run_at,
                class,
                jid,
                abort: None,
            },
        );
        Slot(slot)
    }

    /// Remembers how to abort the job's task (at the stop deadline).
    pub fn set_abort(&self, slot: Slot, abort: AbortHandle) {
        if let Some(r) = self.lock().get_mut(&slot.0) {
            r.abort = Some(abort);
        }
    }

    /// The job in `slot` ended.
    pub fn finish(&self, slot: Slot) {
        self.lock().remove(&slot.0);
    }

    /// Jobs running now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Work-hash entries: slot (base 36, as Sidekiq's thread ids) ⇒
    /// `{"queue","payload","run_at"}`.
    pub fn work_entries(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .map(|(slot, r)| {
                let payload = String::from_utf8_lossy(&r.lease.payload);
                let v = serde_json::json!({"queue": r.lease.queue, "payload": payload, "run_at": r.run_at});
                (radix36(*slot), v.to_string())
            })
            .collect()
    }

    /// The leases of every running job.
    pub fn leases(&self) -> Vec<Lease> {
        self.lock().values().map(|r| r.lease.clone()).collect()
    }

    /// Logs every running job (TTIN).
    pub fn log_running(&self) {
        let running = self.lock();
        let now = sidekiq_wire::Timestamp::now().as_whole_secs();
        tracing::info!(busy = running.len(), "TTIN: running jobs follow");
        for r in running.values() {
            tracing::info!(jid = %r.jid, class = %r.class, queue = %r.lease.queue, running_secs = now - r.run_at, "TTIN: running job");
        }
    }

    /// Aborts every running job's task and empties the registry; returns their leases, to be
    /// pushed back (the stop deadline has come).
    pub fn abort_all(&self) -> Vec<Lease> {
        let mut running = self.lock();
        for r in running.values() {
            if let Some(a) = &r.abort {
                a.abort();
            }
        }
        running.drain().map(|(_, r)| r.lease).collect()
    }
}

fn radix36(mut n: u64) -> String {
    let mut s = Vec::new();
    loop {
        s.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ids_are_base36() {
        assert_eq!(radix36(0), "0");
        assert_eq!(radix36(35), "z");
        assert_eq!(radix36(36), "10");
    }

    #[test]
    fn running_jobs_are_listed_until_they_finish() {
        let busy = Busy::default();
        let lease = Lease {
            queue: "default".into(),
            list: "l".into(),
            payload: b"{}".to_vec(),
        };
        let slot = busy.start(lease.clone(), 5, "MailSenderJob".into(), "j".into());
        let work = busy.work_entries();
        assert_eq!(work.len(), 1);
        assert!(work[0].1.contains("\"run_at\":5"));
        busy.finish(slot);
        assert!(busy.is_empty());
        busy.start(lease.clone(), 5, "X".into(), "k".into());
        assert_eq!(busy.abort_all(), vec![lease]);
        assert!(busy.is_empty());
    }
}
