//! What the workers panel shows for the autoscaling lesson: the local autoscaler's last
//! decision (`mailworker:autoscaler`, written by `ops/run --autoscale` and
//! `ops/autoscale-drill`), CPU in the units `kubectl` uses, and processes whose heartbeat
//! has stopped.
//!
//! Two CPU percentages exist and differ by the request: the Busy page and the panel's
//! "% of one core" column divide by one core (1000m); `kubectl get hpa` and the HPA divide
//! by the container's CPU **request** (100m in `ops/k8s/base/worker.yaml`), so 25 % of one
//! core is 250 % to the HPA. The panel shows both, and millicores, which mean the same to
//! everyone.

use mail_protocol::autoscaler::{AutoscalerState, WorkerUsage};
use serde::Serialize;

/// A process whose last heartbeat is older than this is marked stale: heartbeats come every
/// 5 s, so three missed ones mean it is stuck, cut off or gone (Sidekiq drops it from the
/// Busy page only after 60 s).
pub const STALE_AFTER_SECS: i64 = 15;

/// Whether a heartbeat `beat_age_secs` old means the process is stale.
pub fn is_stale(beat_age_secs: i64) -> bool {
    beat_age_secs > STALE_AFTER_SECS
}

/// Millicores from a percentage of one core.
pub fn millicores(percent_of_core: f64) -> f64 {
    percent_of_core * 10.0
}

/// Millicores as a percentage of the CPU request (what the HPA averages).
pub fn percent_of_request(millicores: f64, request_millicores: f64) -> Option<f64> {
    (request_millicores > 0.0).then(|| millicores / request_millicores * 100.0)
}

/// The autoscaler block of the panel: the published state as it is (the template reads its
/// fields, `metric` as `cpu` or `queue`), how old it is, and the workers the panel cannot
/// list from heartbeats.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AutoscalerView {
    /// The last sync, with `workers` moved out into `without_heartbeat` (those without one).
    #[serde(flatten)]
    pub state: AutoscalerState,
    /// Seconds since its last sync.
    pub age_secs: i64,
    /// Workers it runs that have no heartbeat (yet, or any more): starting or terminating.
    pub without_heartbeat: Vec<WorkerUsage>,
}

impl AutoscalerView {
    /// The view of `state` at `now` (epoch seconds); `has_heartbeat` tells which of its
    /// workers the panel already lists.
    pub fn new(
        mut state: AutoscalerState,
        now: f64,
        has_heartbeat: impl Fn(&WorkerUsage) -> bool,
    ) -> Self {
        let workers = std::mem::take(&mut state.workers);
        AutoscalerView {
            age_secs: (now - state.updated_at).max(0.0).round() as i64,
            without_heartbeat: workers.into_iter().filter(|w| !has_heartbeat(w)).collect(),
            state,
        }
    }
}

/// Whether the autoscaler's `worker` is the heartbeat of `identity` (`hostname:pid:hex`),
/// `hostname`, `pid`: by identity once the worker has logged it, else by host name and pid
/// (the supervisor sets each worker's `HOSTNAME` to its name).
pub fn same_worker(worker: &WorkerUsage, identity: &str, hostname: &str, pid: u32) -> bool {
    match &worker.identity {
        Some(id) => id == identity,
        None => worker.name == hostname && worker.pid == pid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_protocol::autoscaler::Metric;

    fn usage(name: &str, pid: u32, identity: Option<&str>) -> WorkerUsage {
        WorkerUsage {
            name: name.into(),
            pid,
            identity: identity.map(Into::into),
            cpu_millicores: Some(250.0),
            cpu_percent_of_request: Some(250.0),
            phase: "running".into(),
        }
    }

    #[test]
    fn cpu_in_kubectl_units() {
        // The measurement: ~245m is ~24.5 % of one core and ~245 % of a 100m request.
        assert_eq!(millicores(24.5), 245.0);
        assert_eq!(percent_of_request(250.0, 100.0), Some(250.0));
        assert!((percent_of_request(245.0, 100.0).unwrap() - 245.0).abs() < 1e-9);
        assert_eq!(percent_of_request(245.0, 0.0), None);
    }

    #[test]
    fn staleness_starts_after_three_missed_beats() {
        assert!(!is_stale(5));
        assert!(!is_stale(15));
        assert!(is_stale(16));
    }

    #[test]
    fn workers_match_their_heartbeats() {
        let w = usage("worker-2", 42, Some("worker-2:42:abc"));
        assert!(same_worker(&w, "worker-2:42:abc", "worker-2", 42));
        assert!(!same_worker(&w, "worker-2:42:def", "worker-2", 42));
        let starting = usage("worker-3", 43, None);
        assert!(same_worker(&starting, "worker-3:43:fff", "worker-3", 43));
        assert!(!same_worker(&starting, "worker-3:44:fff", "worker-3", 44));
    }

    #[test]
    fn the_view_lists_workers_without_heartbeats() {
        let state = AutoscalerState {
            updated_at: 100.0,
            metric: Metric::Cpu,
            metric_value: Some(245.0),
            metric_target: 70.0,
            current_replicas: 1,
            proposed_replicas: 4,
            desired_replicas: 2,
            min_replicas: 1,
            max_replicas: 10,
            reason: "ScaleUpLimit".into(),
            cpu_request_millicores: 100.0,
            time_compression: 4.0,
            sync_period_secs: 3.75,
            workers: vec![
                usage("worker-1", 1, Some("worker-1:1:a")),
                usage("worker-2", 2, None),
            ],
        };
        let v = AutoscalerView::new(state, 103.4, |w| w.name == "worker-1");
        assert_eq!(v.state.metric, Metric::Cpu);
        assert!(v.state.workers.is_empty(), "moved out");
        assert_eq!(v.age_secs, 3);
        assert_eq!(v.without_heartbeat.len(), 1);
        assert_eq!(v.without_heartbeat[0].name, "worker-2");
    }
}
