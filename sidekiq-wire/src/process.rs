//! Process heartbeats: the `processes` set and each process's `<identity>` hash.
//!
//! What the three Busy pages need (sidekiq-wire.md §2.3, gotchas 2–5, 12, 13): `info` with
//! `started_at`, `concurrency` (7.3 crashes without it), `queues` (6.4), integer `weights`
//! (7.3), `capsules` (8.0.9), `identity` equal to the hash key and `embedded: false`; hash
//! fields `busy`, `beat`, `quiet`, `rss`, `rtt_us` and `concurrency` (8.1.2+).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Hash field where this project's worker reports its CPU usage (percent of one core).
/// Sidekiq ignores unknown hash fields; the web's Workers panel reads it.
pub const CPU_FIELD: &str = "cpu";

/// How a process picks among its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueMode {
    /// Always the first non-empty queue in the configured order.
    Strict,
    /// A queue with weight 2 is tried first twice as often as one with weight 1.
    Weighted,
}

/// The `info` JSON of a heartbeat. Every field defaults when reading, because Ruby
/// versions differ in what they write.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
#[non_exhaustive]
pub struct ProcessInfo {
    /// Host name (pod name in Kubernetes).
    pub hostname: String,
    /// Start time, float epoch seconds.
    pub started_at: f64,
    /// OS process id.
    pub pid: u32,
    /// Free-form tag shown next to the name.
    pub tag: String,
    /// Worker slots.
    pub concurrency: usize,
    /// Queue names (6.4 needs these).
    pub queues: Vec<String>,
    /// One `{queue: weight}` hash per capsule; integers, 0 for strict (7.3 needs these).
    pub weights: Vec<Map<String, Value>>,
    /// `{"default": {"concurrency", "mode", "weights"}}` (8.0.9 needs these).
    pub capsules: Map<String, Value>,
    /// Labels shown on the Busy page.
    pub labels: Vec<String>,
    /// Must equal the hash key and the member of `processes`.
    pub identity: String,
    /// Version string shown on the Busy page.
    pub version: String,
    /// `true` hides Quiet/Stop; we are never embedded.
    pub embedded: bool,
}

impl ProcessInfo {
    /// The `info` this project's worker writes, before its queues are set.
    pub fn new(identity: &str, hostname: &str, pid: u32, version: &str, started_at: f64) -> Self {
        ProcessInfo {
            hostname: hostname.to_owned(),
            started_at,
            pid,
            identity: identity.to_owned(),
            version: version.to_owned(),
            labels: vec!["rust".into()],
            ..ProcessInfo::default()
        }
    }

    /// Sets concurrency and queues in all three shapes: `queues` (6.4), integer `weights`
    /// (7.3; 0 for strict) and `capsules` (8.x).
    pub fn with_queues(
        mut self,
        concurrency: usize,
        queues: &[(String, u32)],
        mode: QueueMode,
    ) -> Self {
        let weights: Map<String, Value> = queues
            .iter()
            .map(|(q, w)| {
                let w = if mode == QueueMode::Strict { 0 } else { *w };
                (q.clone(), Value::from(w))
            })
            .collect();
        let mode_name = match mode {
            QueueMode::Strict => "strict",
            QueueMode::Weighted => "weighted",
        };
        self.capsules = Map::new();
        self.capsules.insert(
            "default".into(),
            json!({"concurrency": concurrency, "mode": mode_name, "weights": weights}),
        );
        self.concurrency = concurrency;
        self.queues = queues.iter().map(|(q, _)| q.clone()).collect();
        self.weights = vec![weights];
        self
    }
}

/// A live process as the Busy page sees it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProcessSnapshot {
    /// The identity (hash key).
    pub identity: String,
    /// Its `info`.
    pub info: ProcessInfo,
    /// Jobs running now.
    pub busy: i64,
    /// Worker slots (hash field if present, else `info.concurrency`).
    pub concurrency: i64,
    /// Last heartbeat, float epoch seconds.
    pub beat: f64,
    /// Quieted (no longer fetching).
    pub quiet: bool,
    /// Resident memory, KiB.
    pub rss_kb: i64,
    /// Redis round trip, microseconds.
    pub rtt_us: i64,
    /// CPU usage in percent of one core, if the process reports it (ours do).
    pub cpu_percent: Option<f64>,
}

/// Reads every live process (members of `processes` whose hash still has `info`).
///
/// # Errors
/// Redis errors.
pub async fn list_processes<C>(conn: &mut C) -> Result<Vec<ProcessSnapshot>, redis::RedisError>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut identities: Vec<String> = redis::cmd("SMEMBERS")
        .arg(crate::keys::PROCESSES)
        .query_async(conn)
        .await?;
    identities.sort();
    if identities.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in &identities {
        pipe.cmd("HMGET").arg(id).arg(&[
            "info",
            "busy",
            "beat",
            "quiet",
            "rss",
            "rtt_us",
            "concurrency",
            CPU_FIELD,
        ]);
    }
    let rows: Vec<Vec<Option<String>>> = pipe.query_async(conn).await?;
    let mut out = Vec::new();
    for (identity, row) in identities.into_iter().zip(rows) {
        let field = |i: usize| row.get(i).cloned().flatten();
        let Some(info) = field(0).and_then(|s| serde_json::from_str::<ProcessInfo>(&s).ok()) else {
            continue; // hash expired: the process is gone (Ruby prunes these lazily)
        };
        let num = |i: usize| field(i).and_then(|s| s.parse::<f64>().ok());
        out.push(ProcessSnapshot {
            concurrency: num(6).map_or(info.concurrency as i64, |c| c as i64),
            busy: num(1).unwrap_or(0.0) as i64,
            beat: num(2).unwrap_or(0.0),
            quiet: field(3).as_deref() == Some("true"),
            rss_kb: num(4).unwrap_or(0.0) as i64,
            rtt_us: num(5).unwrap_or(0.0) as i64,
            cpu_percent: num(7),
            identity,
            info,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_has_what_every_busy_page_needs() {
        let q = vec![("high".to_string(), 2), ("default".to_string(), 1)];
        let info = ProcessInfo::new("h:1:abc", "h", 1, "0.1.0", 1.5).with_queues(
            10,
            &q,
            QueueMode::Weighted,
        );
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["concurrency"], 10);
        assert_eq!(v["queues"], json!(["high", "default"]));
        assert_eq!(v["weights"], json!([{"high": 2, "default": 1}]));
        assert_eq!(v["capsules"]["default"]["mode"], "weighted");
        assert_eq!(v["capsules"]["default"]["weights"]["high"], 2);
        assert_eq!(v["identity"], "h:1:abc");
        assert_eq!(v["embedded"], false);
        assert!(v["started_at"].is_f64());
        let strict = ProcessInfo::new("i", "h", 1, "0", 1.0).with_queues(1, &q, QueueMode::Strict);
        assert_eq!(
            serde_json::to_value(&strict).unwrap()["weights"],
            json!([{"high": 0, "default": 0}])
        );
    }

    #[test]
    fn ruby_6_4_info_reads() {
        let ruby = r#"{"hostname":"h","started_at":1732400000.5,"pid":42,"tag":"app","concurrency":5,"queues":["default"],"labels":[],"identity":"h:42:0123456789ab"}"#;
        let info: ProcessInfo = serde_json::from_str(ruby).unwrap();
        assert_eq!(info.concurrency, 5);
        assert!(info.capsules.is_empty());
    }
}
