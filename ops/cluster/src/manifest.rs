//! Reads the autoscaling parameters from the Kubernetes manifests the cluster uses, so the
//! local drill and the cluster never disagree: the HPA (`ops/k8s/base/hpa.yaml`), the worker
//! Deployment's CPU request (`ops/k8s/base/worker.yaml`) and KEDA's `ScaledObject` for the
//! queue-length variant (`ops/k8s/overlays/dev-keda/scaledobject.yaml`).
//!
//! Omitted fields get the defaults the API server fills in (`minReplicas: 1`, Kubernetes'
//! default `behavior`); fields the drill cannot honour are refused rather than ignored.

use crate::hpa::{HpaSpec, Policy, PolicyKind, Rules, SelectPolicy, Target};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// A manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not YAML of the expected shape.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: serde_norway::Error,
    },
    /// YAML of the right shape, but with something the drill cannot use.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HpaDoc {
    kind: String,
    spec: HpaDocSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HpaDocSpec {
    min_replicas: Option<u32>,
    max_replicas: u32,
    #[serde(default)]
    metrics: Vec<MetricDoc>,
    behavior: Option<BehaviorDoc>,
}

#[derive(Deserialize)]
struct MetricDoc {
    #[serde(rename = "type")]
    kind: String,
    resource: Option<ResourceMetricDoc>,
}

#[derive(Deserialize)]
struct ResourceMetricDoc {
    name: String,
    target: ResourceTargetDoc,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceTargetDoc {
    #[serde(rename = "type")]
    kind: String,
    average_utilization: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct BehaviorDoc {
    scale_up: Option<RulesDoc>,
    scale_down: Option<RulesDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RulesDoc {
    stabilization_window_seconds: Option<u64>,
    select_policy: Option<String>,
    policies: Option<Vec<PolicyDoc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyDoc {
    #[serde(rename = "type")]
    kind: String,
    value: u32,
    period_seconds: u64,
}

fn read(path: &Path) -> Result<String, ManifestError> {
    std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T, ManifestError> {
    serde_norway::from_str(text).map_err(|source| ManifestError::Parse {
        path: path.display().to_string(),
        source,
    })
}

fn unsupported(path: &Path, reason: impl Into<String>) -> ManifestError {
    ManifestError::Unsupported {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The HPA of `hpa_path` with the CPU request of the first container of `deployment_path`.
///
/// # Errors
/// Unreadable files, another kind than HorizontalPodAutoscaler, no CPU `Utilization` metric,
/// a Deployment without a CPU request, or unknown policy types.
pub fn cpu_hpa(hpa_path: &Path, deployment_path: &Path) -> Result<HpaSpec, ManifestError> {
    let doc: HpaDoc = parse(hpa_path, &read(hpa_path)?)?;
    if doc.kind != "HorizontalPodAutoscaler" {
        return Err(unsupported(
            hpa_path,
            format!("kind {} is not HorizontalPodAutoscaler", doc.kind),
        ));
    }
    let percent = doc
        .spec
        .metrics
        .iter()
        .filter(|m| m.kind == "Resource")
        .filter_map(|m| m.resource.as_ref())
        .find(|r| r.name == "cpu" && r.target.kind == "Utilization")
        .and_then(|r| r.target.average_utilization)
        .ok_or_else(|| unsupported(hpa_path, "no Resource cpu metric with averageUtilization"))?;
    let request_millicores = cpu_request_millicores(deployment_path)?;
    let behavior = doc.spec.behavior.unwrap_or_default();
    Ok(HpaSpec {
        min_replicas: doc.spec.min_replicas.unwrap_or(1),
        max_replicas: doc.spec.max_replicas,
        target: Target::CpuUtilization {
            percent: f64::from(percent),
            request_millicores,
        },
        scale_up: rules(hpa_path, behavior.scale_up, Rules::default_scale_up())?,
        scale_down: rules(hpa_path, behavior.scale_down, Rules::default_scale_down())?,
        tolerance: 0.1,
        sync_period: Duration::from_secs(15),
    })
}

fn rules(path: &Path, doc: Option<RulesDoc>, default: Rules) -> Result<Rules, ManifestError> {
    let Some(doc) = doc else { return Ok(default) };
    let select = match doc.select_policy.as_deref() {
        None | Some("Max") => SelectPolicy::Max,
        Some("Min") => SelectPolicy::Min,
        Some("Disabled") => SelectPolicy::Disabled,
        Some(other) => return Err(unsupported(path, format!("selectPolicy {other}"))),
    };
    let policies = match doc.policies {
        None => default.policies,
        Some(list) => list
            .into_iter()
            .map(|p| {
                let kind = match p.kind.as_str() {
                    "Pods" => PolicyKind::Pods,
                    "Percent" => PolicyKind::Percent,
                    other => return Err(unsupported(path, format!("policy type {other}"))),
                };
                Ok(Policy {
                    kind,
                    value: p.value,
                    period: Duration::from_secs(p.period_seconds),
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Rules {
        stabilization: doc
            .stabilization_window_seconds
            .map_or(default.stabilization, Duration::from_secs),
        policies,
        select,
    })
}

/// The CPU request of the first container of a Deployment, in millicores.
///
/// # Errors
/// Unreadable file, no `resources.requests.cpu`, or a quantity that does not parse.
pub fn cpu_request_millicores(path: &Path) -> Result<f64, ManifestError> {
    let doc: serde_norway::Value = parse(path, &read(path)?)?;
    let cpu = doc
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("spec"))
        .and_then(|s| s.get("containers"))
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("resources"))
        .and_then(|r| r.get("requests"))
        .and_then(|r| r.get("cpu"))
        .ok_or_else(|| {
            unsupported(
                path,
                "no spec.template.spec.containers[0].resources.requests.cpu",
            )
        })?;
    let text = match cpu {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Number(n) => n.to_string(),
        _ => return Err(unsupported(path, "requests.cpu is not a quantity")),
    };
    parse_cpu_quantity(&text)
        .ok_or_else(|| unsupported(path, format!("requests.cpu {text:?} is not a CPU quantity")))
}

/// A Kubernetes CPU quantity (`100m`, `0.5`, `2`) in millicores.
pub fn parse_cpu_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix('m') {
        Some(n) => (n, 1.0),
        None => (text, 1000.0),
    };
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value > 0.0).then_some(value * scale)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScaledObjectDoc {
    kind: String,
    spec: ScaledObjectSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScaledObjectSpec {
    min_replica_count: Option<u32>,
    max_replica_count: Option<u32>,
    #[serde(default)]
    triggers: Vec<TriggerDoc>,
    advanced: Option<AdvancedDoc>,
}

#[derive(Deserialize)]
struct TriggerDoc {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    metadata: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdvancedDoc {
    horizontal_pod_autoscaler_config: Option<HpaConfigDoc>,
}

#[derive(Deserialize)]
struct HpaConfigDoc {
    behavior: Option<BehaviorDoc>,
}

/// The queue-length autoscaler KEDA builds from a `ScaledObject` with one `redis` trigger:
/// the spec, and the Redis list it watches (e.g. `queue:default`).
///
/// # Errors
/// Unreadable file, another kind, not exactly one `redis` trigger, or a `listLength` that is
/// not a positive number.
pub fn keda_queue_hpa(path: &Path) -> Result<(HpaSpec, String), ManifestError> {
    let doc: ScaledObjectDoc = parse(path, &read(path)?)?;
    if doc.kind != "ScaledObject" {
        return Err(unsupported(
            path,
            format!("kind {} is not ScaledObject", doc.kind),
        ));
    }
    let redis: Vec<&TriggerDoc> = doc
        .spec
        .triggers
        .iter()
        .filter(|t| t.kind == "redis")
        .collect();
    let [trigger] = redis.as_slice() else {
        return Err(unsupported(
            path,
            "the drill needs exactly one trigger of type redis",
        ));
    };
    let list = trigger
        .metadata
        .get("listName")
        .cloned()
        .ok_or_else(|| unsupported(path, "redis trigger without listName"))?;
    let average = trigger
        .metadata
        .get("listLength")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .ok_or_else(|| unsupported(path, "redis trigger without a positive listLength"))?;
    let behavior = doc
        .spec
        .advanced
        .and_then(|a| a.horizontal_pod_autoscaler_config)
        .and_then(|c| c.behavior)
        .unwrap_or_default();
    let spec = HpaSpec {
        // KEDA's defaults: 0 and 100. The drill never scales to zero (see the overlay).
        min_replicas: doc.spec.min_replica_count.unwrap_or(0).max(1),
        max_replicas: doc.spec.max_replica_count.unwrap_or(100),
        target: Target::QueuePerReplica { average },
        scale_up: rules(path, behavior.scale_up, Rules::default_scale_up())?,
        scale_down: rules(path, behavior.scale_down, Rules::default_scale_down())?,
        tolerance: 0.1,
        sync_period: Duration::from_secs(15),
    };
    Ok((spec, list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn repo(path: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    }

    #[test]
    fn reads_the_projects_hpa_and_request() {
        let spec = cpu_hpa(
            &repo("ops/k8s/base/hpa.yaml"),
            &repo("ops/k8s/base/worker.yaml"),
        )
        .unwrap();
        assert_eq!((spec.min_replicas, spec.max_replicas), (1, 10));
        assert_eq!(
            spec.target,
            Target::CpuUtilization {
                percent: 70.0,
                request_millicores: 100.0
            }
        );
        assert_eq!(spec.scale_up.stabilization, Duration::from_secs(60));
        assert_eq!(spec.scale_up.policies.len(), 2);
        assert_eq!(spec.scale_up.policies[1].kind, PolicyKind::Pods);
        assert_eq!(spec.scale_down.stabilization, Duration::from_secs(300));
        assert_eq!(spec.scale_down.policies[0].value, 50);
    }

    #[test]
    fn reads_the_keda_variant() {
        let (spec, list) =
            keda_queue_hpa(&repo("ops/k8s/overlays/dev-keda/scaledobject.yaml")).unwrap();
        assert_eq!(list, "queue:default");
        assert!(matches!(spec.target, Target::QueuePerReplica { average } if average > 0.0));
        assert!(spec.min_replicas >= 1);
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_cpu_quantity("100m"), Some(100.0));
        assert_eq!(parse_cpu_quantity("0.5"), Some(500.0));
        assert_eq!(parse_cpu_quantity("2"), Some(2000.0));
        assert_eq!(parse_cpu_quantity("-1"), None);
        assert_eq!(parse_cpu_quantity("1Gi"), None);
    }

    #[test]
    fn omitted_behavior_gets_kubernetes_defaults_and_bad_values_are_refused() {
        let dir = std::env::temp_dir().join(format!("manifest-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hpa = dir.join("hpa.yaml");
        std::fs::write(
            &hpa,
            "kind: HorizontalPodAutoscaler\nspec:\n  maxReplicas: 4\n  metrics:\n  - type: Resource\n    resource:\n      name: cpu\n      target: {type: Utilization, averageUtilization: 50}\n",
        )
        .unwrap();
        let spec = cpu_hpa(&hpa, &repo("ops/k8s/base/worker.yaml")).unwrap();
        assert_eq!(spec.min_replicas, 1);
        assert_eq!(spec.scale_up, Rules::default_scale_up());
        assert_eq!(spec.scale_down, Rules::default_scale_down());
        std::fs::write(
            &hpa,
            "kind: HorizontalPodAutoscaler\nspec:\n  maxReplicas: 4\n  metrics: []\n",
        )
        .unwrap();
        let err = cpu_hpa(&hpa, &repo("ops/k8s/base/worker.yaml")).unwrap_err();
        assert!(err.to_string().contains("averageUtilization"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
