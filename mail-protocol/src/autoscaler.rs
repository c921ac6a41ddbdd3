//! The local autoscaler's state, published for the web's workers panel.
//!
//! `ops/run --autoscale` and `ops/autoscale-drill` run the Kubernetes HPA algorithm on local
//! worker processes (crate `mail-cluster`). After every sync they write one JSON document
//! ([`AutoscalerState`]) as a STRING under [`KEY`] with a TTL of a few sync periods, so the
//! key disappears by itself when the autoscaler stops. Nothing else writes it; a reader that
//! finds no key shows "no autoscaler running".
//!
//! Units are those of `kubectl get hpa` and `kubectl top pod`: CPU in millicores and as a
//! percentage **of the request** (the HPA's number), which is not the Busy page's or the
//! panel's `cpu` field (percent of **one core**): with a 100m request, 25 % of one core is
//! 250m, shown by the HPA as 250 %.

use serde::{Deserialize, Serialize};

/// STRING: the JSON [`AutoscalerState`], with a TTL.
pub const KEY: &str = "mailworker:autoscaler";

/// What the autoscaler scales on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Average CPU utilization, percent of the request (`type: Resource`, the seed's HPA).
    Cpu,
    /// Waiting jobs per replica (KEDA's `redis` scaler, `listLength`).
    Queue,
}

/// One worker process as the autoscaler sees it (one "pod").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerUsage {
    /// The supervisor's name for it (`worker-1`, …), also its `HOSTNAME`.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Its Sidekiq identity once it has logged it (`hostname:pid:hex`, as on the Busy page).
    pub identity: Option<String>,
    /// CPU over the last metrics window in millicores; `None` before its first full window
    /// (metrics-server has no sample yet).
    pub cpu_millicores: Option<f64>,
    /// The same as a percentage of the CPU request (what `kubectl get hpa` averages).
    pub cpu_percent_of_request: Option<f64>,
    /// `starting`, `running` or `terminating` (SIGTERM sent, finishing its jobs).
    pub phase: String,
}

/// The autoscaler after one sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoscalerState {
    /// When this sync ran, epoch seconds.
    pub updated_at: f64,
    /// The metric in use.
    pub metric: Metric,
    /// Its current value: average CPU in percent of the request, or waiting jobs per running
    /// replica. `None` while no worker has a sample.
    pub metric_value: Option<f64>,
    /// Its target (`averageUtilization`, or `listLength`).
    pub metric_target: f64,
    /// The Deployment's replica count before this sync.
    pub current_replicas: u32,
    /// What the metric alone asks for.
    pub proposed_replicas: u32,
    /// What the HPA decided after stabilization windows and rate policies.
    pub desired_replicas: u32,
    /// `minReplicas`.
    pub min_replicas: u32,
    /// `maxReplicas`.
    pub max_replicas: u32,
    /// Why `desired` differs from `proposed` (`ScaleUpStabilized`, `ScaleDownLimit`, …).
    pub reason: String,
    /// The worker container's CPU request in millicores.
    pub cpu_request_millicores: f64,
    /// How much faster than a cluster the windows run (1 = real time).
    pub time_compression: f64,
    /// Seconds between syncs (15 s in a cluster, divided by the compression).
    pub sync_period_secs: f64,
    /// Every worker process, including those finishing after SIGTERM.
    pub workers: Vec<WorkerUsage>,
}

impl AutoscalerState {
    /// How long the key lives after a write: three syncs, at least 10 s.
    pub fn ttl_secs(&self) -> u64 {
        (self.sync_period_secs * 3.0).ceil().max(10.0) as u64
    }

    /// Reads the state, if an autoscaler is running.
    ///
    /// # Errors
    /// Redis errors; a value that is not an [`AutoscalerState`] reads as `None`.
    pub async fn load<C: redis::aio::ConnectionLike>(
        conn: &mut C,
    ) -> redis::RedisResult<Option<Self>> {
        let raw: Option<String> = redis::cmd("GET").arg(KEY).query_async(conn).await?;
        Ok(raw.and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// Publishes the state with its TTL.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn store<C: redis::aio::ConnectionLike>(
        &self,
        conn: &mut C,
    ) -> redis::RedisResult<()> {
        let json = serde_json::to_string(self).unwrap_or_default();
        redis::cmd("SET")
            .arg(KEY)
            .arg(json)
            .arg("EX")
            .arg(self.ttl_secs())
            .query_async(conn)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_is_stable() {
        let state = AutoscalerState {
            updated_at: 1.5,
            metric: Metric::Cpu,
            metric_value: Some(250.0),
            metric_target: 70.0,
            current_replicas: 1,
            proposed_replicas: 4,
            desired_replicas: 3,
            min_replicas: 1,
            max_replicas: 10,
            reason: "ScaleUpLimit".into(),
            cpu_request_millicores: 100.0,
            time_compression: 4.0,
            sync_period_secs: 3.75,
            workers: vec![WorkerUsage {
                name: "worker-1".into(),
                pid: 42,
                identity: None,
                cpu_millicores: Some(250.0),
                cpu_percent_of_request: Some(250.0),
                phase: "running".into(),
            }],
        };
        let json = serde_json::to_value(&state).unwrap();
        // The web reads these names; renaming one is a breaking change.
        assert_eq!(json["metric"], "cpu");
        assert_eq!(json["desired_replicas"], 3);
        assert_eq!(json["workers"][0]["cpu_percent_of_request"], 250.0);
        assert_eq!(json["workers"][0]["identity"], serde_json::Value::Null);
        assert_eq!(state.ttl_secs(), 12);
        let back: AutoscalerState = serde_json::from_value(json).unwrap();
        assert_eq!(back, state);
    }
}
