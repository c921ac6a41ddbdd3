//! The Kubernetes HorizontalPodAutoscaler algorithm (`autoscaling/v2`), as the controller in
//! `kube-controller-manager` runs it, for one target.
//!
//! Each sync (every 15 s in a cluster) does three things, and so does [`Hpa::sync`]:
//! 1. **Replicas from the metric** ([`cpu_proposal`], [`queue_proposal`]):
//!    `desired = ceil(current × metric / target)`, unless the ratio is within the tolerance
//!    (10 %); pods without a metric sample yet count as using 0 % when scaling up and 100 %
//!    when scaling down, and a proposal that would flip the direction is dropped.
//! 2. **Stabilization**: the result is the *lowest* proposal of the scale-up window and the
//!    *highest* of the scale-down window (both clamped around the current count), so a short
//!    spike does not scale up and a short lull does not scale down.
//! 3. **Rate policies**: a scale-up may add at most what the policies allow in their periods
//!    (`selectPolicy: Max` by default picks the most permissive one), a scale-down may remove
//!    at most what they allow; then `minReplicas`/`maxReplicas`.
//!
//! Time is a [`Duration`] since an arbitrary origin, so tests drive it directly; the spec's
//! durations can be compressed by a factor ([`HpaSpec::compressed`]) for a drill.

use std::time::Duration;

/// How a policy limits change: by a number of pods or a percentage of the current count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// `type: Pods`.
    Pods,
    /// `type: Percent`.
    Percent,
}

/// One entry of `behavior.scaleUp.policies` / `scaleDown.policies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// How many pods, or which percentage.
    pub value: u32,
    /// The window over which changes are added up.
    pub period: Duration,
}

/// `selectPolicy`: which policy wins when several apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectPolicy {
    /// The one allowing the largest change (the default).
    Max,
    /// The one allowing the smallest change.
    Min,
    /// No scaling in this direction at all.
    Disabled,
}

/// `behavior.scaleUp` or `behavior.scaleDown`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// `stabilizationWindowSeconds`.
    pub stabilization: Duration,
    /// `policies`.
    pub policies: Vec<Policy>,
    /// `selectPolicy`.
    pub select: SelectPolicy,
}

impl Rules {
    /// Kubernetes' default `scaleUp`: no window; double or add 4 pods per 15 s, whichever is more.
    pub fn default_scale_up() -> Self {
        Rules {
            stabilization: Duration::ZERO,
            policies: vec![
                Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period: Duration::from_secs(15),
                },
                Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period: Duration::from_secs(15),
                },
            ],
            select: SelectPolicy::Max,
        }
    }

    /// Kubernetes' default `scaleDown`: a 300 s window, then any amount per 15 s.
    pub fn default_scale_down() -> Self {
        Rules {
            stabilization: Duration::from_secs(300),
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period: Duration::from_secs(15),
            }],
            select: SelectPolicy::Max,
        }
    }

    fn longest_period(&self) -> Duration {
        self.policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or_default()
    }

    fn compressed(&self, factor: f64) -> Self {
        Rules {
            stabilization: self.stabilization.div_f64(factor),
            policies: self
                .policies
                .iter()
                .map(|p| Policy {
                    period: p.period.div_f64(factor),
                    ..*p
                })
                .collect(),
            select: self.select,
        }
    }
}

/// What the HPA scales on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// `type: Resource`, `cpu`, `Utilization`: average CPU as a percentage of the request.
    CpuUtilization {
        /// `averageUtilization` (percent of the request).
        percent: f64,
        /// The container's CPU request in millicores (from the Deployment).
        request_millicores: f64,
    },
    /// `type: External`, `AverageValue` (or KEDA's `listLength`): waiting jobs per replica.
    QueuePerReplica {
        /// Jobs per replica.
        average: f64,
    },
}

/// Everything the algorithm needs from a HorizontalPodAutoscaler manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaSpec {
    /// `minReplicas`.
    pub min_replicas: u32,
    /// `maxReplicas`.
    pub max_replicas: u32,
    /// The metric and its target.
    pub target: Target,
    /// `behavior.scaleUp`.
    pub scale_up: Rules,
    /// `behavior.scaleDown`.
    pub scale_down: Rules,
    /// The controller's `--horizontal-pod-autoscaler-tolerance` (0.1).
    pub tolerance: f64,
    /// The controller's `--horizontal-pod-autoscaler-sync-period` (15 s).
    pub sync_period: Duration,
}

impl HpaSpec {
    /// The same spec with every duration divided by `factor` (a drill runs minutes of
    /// cluster time in less). A factor of 1 or less leaves it unchanged.
    pub fn compressed(&self, factor: f64) -> Self {
        if factor <= 1.0 {
            return self.clone();
        }
        HpaSpec {
            scale_up: self.scale_up.compressed(factor),
            scale_down: self.scale_down.compressed(factor),
            sync_period: self.sync_period.div_f64(factor),
            ..self.clone()
        }
    }
}

/// One pod's CPU as metrics-server reports it: `None` while it has no complete sample yet.
pub type PodCpu = Option<f64>;

/// Replicas proposed by the CPU metric (the replica calculator's `GetResourceReplicas`).
///
/// `current` is the Deployment's replica count, `pods` one entry per running pod, usage in
/// millicores. Returns the proposal and the average utilization (percent of the request) over
/// the pods that have a sample, `None` when no pod has one yet (the HPA then keeps `current`).
pub fn cpu_proposal(
    current: u32,
    pods: &[PodCpu],
    request_millicores: f64,
    target_percent: f64,
    tolerance: f64,
) -> (u32, Option<f64>) {
    let ready: Vec<f64> = pods.iter().flatten().copied().collect();
    if ready.is_empty() || request_millicores <= 0.0 || target_percent <= 0.0 {
        return (current, None);
    }
    let utilization = |usage: f64, n: usize| {
        usage * 100.0 / (request_millicores * n as f64).max(f64::MIN_POSITIVE)
    };
    let used: f64 = ready.iter().sum();
    let observed = utilization(used, ready.len());
    let ratio = observed / target_percent;
    let missing = pods.len() - ready.len();
    if missing == 0 {
        if (1.0 - ratio).abs() <= tolerance {
            return (current, Some(observed));
        }
        return (ceil_replicas(ratio * ready.len() as f64), Some(observed));
    }
    // Pods without a sample: assume the least helpful value for the direction we are going,
    // so a half-known fleet never over-reacts.
    let assumed = if ratio < 1.0 {
        request_millicores * target_percent.max(100.0) / 100.0
    } else {
        0.0
    };
    let new_ratio = utilization(used + assumed * missing as f64, pods.len()) / target_percent;
    let flips = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if (1.0 - new_ratio).abs() <= tolerance || flips {
        return (current, Some(observed));
    }
    let proposal = ceil_replicas(new_ratio * pods.len() as f64);
    if (new_ratio < 1.0 && proposal > current) || (new_ratio > 1.0 && proposal < current) {
        return (current, Some(observed));
    }
    (proposal, Some(observed))
}

/// Replicas proposed by an `AverageValue` external metric (`GetExternalPerPodMetricReplicas`):
/// `ceil(total / target)` unless `total / (target × running)` is within the tolerance.
pub fn queue_proposal(
    current: u32,
    running: u32,
    total: f64,
    target_average: f64,
    tolerance: f64,
) -> u32 {
    if target_average <= 0.0 {
        return current;
    }
    let ratio = total / (target_average * f64::from(running.max(1)));
    if (1.0 - ratio).abs() <= tolerance {
        return current;
    }
    ceil_replicas(total / target_average)
}

fn ceil_replicas(x: f64) -> u32 {
    if x.is_finite() && x > 0.0 {
        x.ceil().min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

/// Why a sync ended where it did (the HPA's `ScalingLimited`/`AbleToScale` reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The proposal is used as it is.
    DesiredWithinRange,
    /// The scale-up window holds a lower proposal.
    ScaleUpStabilized,
    /// The scale-down window holds a higher proposal.
    ScaleDownStabilized,
    /// A scale-up policy allows fewer pods now.
    ScaleUpLimit,
    /// A scale-down policy allows removing fewer pods now.
    ScaleDownLimit,
    /// `maxReplicas`.
    TooManyReplicas,
    /// `minReplicas`.
    TooFewReplicas,
}

impl Reason {
    /// The name `kubectl describe hpa` would show.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::DesiredWithinRange => "DesiredWithinRange",
            Reason::ScaleUpStabilized => "ScaleUpStabilized",
            Reason::ScaleDownStabilized => "ScaleDownStabilized",
            Reason::ScaleUpLimit => "ScaleUpLimit",
            Reason::ScaleDownLimit => "ScaleDownLimit",
            Reason::TooManyReplicas => "TooManyReplicas",
            Reason::TooFewReplicas => "TooFewReplicas",
        }
    }
}

/// The outcome of one sync.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// What the metric alone asks for.
    pub proposal: u32,
    /// What to scale to now.
    pub desired: u32,
    /// Why `desired` differs from `proposal` (or not).
    pub reason: Reason,
}

/// One HPA's memory between syncs: past proposals (for stabilization) and past scale
/// events (for the rate policies).
#[derive(Debug)]
pub struct Hpa {
    spec: HpaSpec,
    recommendations: Vec<(Duration, u32)>,
    scale_ups: Vec<(Duration, u32)>,
    scale_downs: Vec<(Duration, u32)>,
}

impl Hpa {
    /// A controller that has not synced yet.
    pub fn new(spec: HpaSpec) -> Self {
        Hpa {
            spec,
            recommendations: Vec::new(),
            scale_ups: Vec::new(),
            scale_downs: Vec::new(),
        }
    }

    /// The spec in use.
    pub fn spec(&self) -> &HpaSpec {
        &self.spec
    }

    /// One sync at `now`: `current` is the Deployment's replica count, `proposal` what the
    /// metric asks for ([`cpu_proposal`] or [`queue_proposal`]). Records the decision as a
    /// scale event when it changes the count, as the controller does after scaling.
    pub fn sync(&mut self, now: Duration, current: u32, proposal: u32) -> Decision {
        let spec = &self.spec;
        // Out-of-range counts are corrected before any metric is looked at.
        if current > spec.max_replicas || current < spec.min_replicas {
            let desired = current.clamp(spec.min_replicas, spec.max_replicas);
            let reason = if current > spec.max_replicas {
                Reason::TooManyReplicas
            } else {
                Reason::TooFewReplicas
            };
            self.record_scale(now, current, desired);
            return Decision {
                proposal,
                desired,
                reason,
            };
        }
        // A fresh controller must not scale down at once: it behaves as if it had proposed
        // the current count at start.
        if self.recommendations.is_empty() && !spec.scale_down.stabilization.is_zero() {
            self.recommendations.push((now, current));
        }
        let (stabilized, mut reason) = self.stabilize(now, current, proposal);
        let desired = self.limit_rate(now, current, stabilized, &mut reason);
        self.record_scale(now, current, desired);
        Decision {
            proposal,
            desired,
            reason,
        }
    }

    fn stabilize(&mut self, now: Duration, current: u32, proposal: u32) -> (u32, Reason) {
        let up_cutoff = now.checked_sub(self.spec.scale_up.stabilization);
        let down_cutoff = now.checked_sub(self.spec.scale_down.stabilization);
        let within = |at: Duration, cutoff: Option<Duration>| cutoff.is_none_or(|c| at > c);
        let mut up = proposal;
        let mut down = proposal;
        for &(at, replicas) in &self.recommendations {
            if within(at, up_cutoff) {
                up = up.min(replicas);
            }
            if within(at, down_cutoff) {
                down = down.max(replicas);
            }
        }
        // Forget what no window can see any more, then remember this proposal.
        self.recommendations
            .retain(|&(at, _)| within(at, up_cutoff) || within(at, down_cutoff));
        self.recommendations.push((now, proposal));

        let mut stabilized = current;
        let mut reason = Reason::DesiredWithinRange;
        if stabilized < up {
            stabilized = up;
        }
        if stabilized > down {
            stabilized = down;
        }
        if stabilized != proposal {
            reason = if proposal > current {
                Reason::ScaleUpStabilized
            } else {
                Reason::ScaleDownStabilized
            };
        }
        (stabilized, reason)
    }

    fn limit_rate(
        &mut self,
        now: Duration,
        current: u32,
        desired: u32,
        reason: &mut Reason,
    ) -> u32 {
        let spec = &self.spec;
        if desired > current {
            let limit = scale_up_limit(now, current, &self.scale_ups, &spec.scale_up).max(current);
            let (allowed, why) = if spec.max_replicas > limit {
                (limit, Reason::ScaleUpLimit)
            } else {
                (spec.max_replicas, Reason::TooManyReplicas)
            };
            if desired > allowed {
                *reason = why;
                return allowed;
            }
        } else if desired < current {
            let limit =
                scale_down_limit(now, current, &self.scale_downs, &spec.scale_down).min(current);
            let (allowed, why) = if spec.min_replicas < limit {
                (limit, Reason::ScaleDownLimit)
            } else {
                (spec.min_replicas, Reason::TooFewReplicas)
            };
            if desired < allowed {
                *reason = why;
                return allowed;
            }
        }
        desired
    }

    fn record_scale(&mut self, now: Duration, from: u32, to: u32) {
        let keep = |events: &mut Vec<(Duration, u32)>, longest: Duration| {
            events.retain(|&(at, _)| now.saturating_sub(at) < longest);
        };
        keep(&mut self.scale_ups, self.spec.scale_up.longest_period());
        keep(&mut self.scale_downs, self.spec.scale_down.longest_period());
        if to > from {
            self.scale_ups.push((now, to - from));
        } else if to < from {
            self.scale_downs.push((now, from - to));
        }
    }
}

/// Pods added (or removed) by the events younger than `period`.
fn changed_within(now: Duration, period: Duration, events: &[(Duration, u32)]) -> u32 {
    let cutoff = now.checked_sub(period);
    events
        .iter()
        .filter(|&&(at, _)| cutoff.is_none_or(|c| at > c))
        .map(|&(_, n)| n)
        .sum()
}

fn scale_up_limit(now: Duration, current: u32, events: &[(Duration, u32)], rules: &Rules) -> u32 {
    let pick: fn(u32, u32) -> u32 = match rules.select {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => u32::min,
        SelectPolicy::Max => u32::max,
    };
    let mut result: Option<u32> = None;
    for policy in &rules.policies {
        // The count at the start of the period: later additions are already used up.
        let start = current.saturating_sub(changed_within(now, policy.period, events));
        let proposed = match policy.kind {
            PolicyKind::Pods => start.saturating_add(policy.value),
            PolicyKind::Percent => {
                ceil_replicas(f64::from(start) * (1.0 + f64::from(policy.value) / 100.0))
            }
        };
        result = Some(result.map_or(proposed, |r| pick(r, proposed)));
    }
    result.unwrap_or(current)
}

fn scale_down_limit(now: Duration, current: u32, events: &[(Duration, u32)], rules: &Rules) -> u32 {
    // For scale-down the most permissive policy is the one leaving the fewest pods.
    let pick: fn(u32, u32) -> u32 = match rules.select {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => u32::max,
        SelectPolicy::Max => u32::min,
    };
    let mut result: Option<u32> = None;
    for policy in &rules.policies {
        let start = current.saturating_add(changed_within(now, policy.period, events));
        let proposed = match policy.kind {
            PolicyKind::Pods => start.saturating_sub(policy.value),
            // Truncated, as the controller's int32 conversion does.
            PolicyKind::Percent => {
                (f64::from(start) * (1.0 - f64::from(policy.value) / 100.0)).max(0.0) as u32
            }
        };
        result = Some(result.map_or(proposed, |r| pick(r, proposed)));
    }
    result.unwrap_or(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// The project's `ops/k8s/base/hpa.yaml`, written out.
    fn project_spec() -> HpaSpec {
        HpaSpec {
            min_replicas: 1,
            max_replicas: 10,
            target: Target::CpuUtilization {
                percent: 70.0,
                request_millicores: 100.0,
            },
            scale_up: Rules {
                stabilization: secs(60),
                policies: vec![
                    Policy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period: secs(15),
                    },
                    Policy {
                        kind: PolicyKind::Pods,
                        value: 2,
                        period: secs(60),
                    },
                ],
                select: SelectPolicy::Max,
            },
            scale_down: Rules {
                stabilization: secs(300),
                policies: vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 50,
                    period: secs(60),
                }],
                select: SelectPolicy::Max,
            },
            tolerance: 0.1,
            sync_period: secs(15),
        }
    }

    #[test]
    fn cpu_proposal_is_ceil_of_current_times_ratio() {
        // 2 pods at 140m and 120m of a 100m request: 130 % against 70 % ⇒ ceil(2 × 1.857) = 4.
        let (n, util) = cpu_proposal(2, &[Some(140.0), Some(120.0)], 100.0, 70.0, 0.1);
        assert_eq!(n, 4);
        assert!((util.unwrap() - 130.0).abs() < 1e-9);
    }

    #[test]
    fn cpu_within_tolerance_keeps_the_count() {
        // 75 % against 70 % is a ratio of 1.07: inside the 10 % band.
        assert_eq!(cpu_proposal(3, &[Some(75.0); 3], 100.0, 70.0, 0.1).0, 3);
        // 80 % is 1.14: outside; ceil(3 × 1.1428) = 4.
        assert_eq!(cpu_proposal(3, &[Some(80.0); 3], 100.0, 70.0, 0.1).0, 4);
        // 60 % is 0.857: outside below; ceil(3 × 0.857) = 3, so it stays anyway.
        assert_eq!(cpu_proposal(3, &[Some(60.0); 3], 100.0, 70.0, 0.1).0, 3);
        assert_eq!(cpu_proposal(3, &[Some(10.0); 3], 100.0, 70.0, 0.1).0, 1);
    }

    #[test]
    fn pods_without_samples_count_against_the_direction() {
        // Scaling up: the new pod counts as 0 m. (300 + 0) / 200 = 150 % ⇒ ratio 2.14 ⇒ 5.
        assert_eq!(cpu_proposal(2, &[Some(300.0), None], 100.0, 70.0, 0.1).0, 5);
        // Scaling down: it counts as 100 % of its request. One pod at 10 m: ratio 0.14, but with
        // the unknown pod at 100 m it is (10 + 100) / 200 = 55 % ⇒ ratio 0.79 ⇒ ceil(1.57) = 2.
        assert_eq!(cpu_proposal(2, &[Some(10.0), None], 100.0, 70.0, 0.1).0, 2);
        // No sample at all: nothing to decide on.
        assert_eq!(cpu_proposal(2, &[None, None], 100.0, 70.0, 0.1), (2, None));
    }

    #[test]
    fn a_proposal_that_flips_direction_is_dropped() {
        // One pod at 80 m (ratio 1.14, up), one without a sample counted as 0 m: the average
        // falls to 40 % (ratio 0.57, down). The controller keeps the count rather than flip.
        assert_eq!(cpu_proposal(2, &[Some(80.0), None], 100.0, 70.0, 0.1).0, 2);
    }

    #[test]
    fn queue_proposal_divides_the_backlog() {
        assert_eq!(queue_proposal(1, 1, 5000.0, 500.0, 0.1), 10);
        assert_eq!(queue_proposal(4, 4, 2100.0, 500.0, 0.1), 4); // 1.05: within tolerance
        assert_eq!(queue_proposal(4, 4, 0.0, 500.0, 0.1), 0); // min/max come later
    }

    #[test]
    fn scale_up_waits_for_the_window_then_follows_the_policies() {
        let mut hpa = Hpa::new(project_spec());
        // A calm minute at 1 replica.
        for t in (0..=60).step_by(15) {
            assert_eq!(hpa.sync(secs(t), 1, 1).desired, 1);
        }
        // The load arrives: every sync proposes 10. The 60 s scale-up window still holds the
        // calm proposals of 1 until they are older than 60 s.
        let d = hpa.sync(secs(75), 1, 10);
        assert_eq!((d.desired, d.reason), (1, Reason::ScaleUpStabilized));
        let mut t = 75;
        let mut current = 1;
        let mut seen = vec![];
        while current < 10 && t < 600 {
            t += 15;
            let d = hpa.sync(secs(t), current, 10);
            if d.desired != current {
                seen.push((t, d.desired, d.reason));
            }
            current = d.desired;
        }
        // At 120 s the last calm proposal (60 s) is no longer younger than the window.
        // Percent 100 % per 15 s allows 2, Pods +2 per 60 s allows 3: Max ⇒ 3. At 135 s the
        // Percent period no longer holds that step: 3 doubled ⇒ 6. At 150 s doubling gives
        // 12: the proposal of 10 is now within every limit.
        assert_eq!(seen[0], (120, 3, Reason::ScaleUpLimit));
        assert_eq!(seen[1], (135, 6, Reason::ScaleUpLimit));
        assert_eq!(seen[2], (150, 10, Reason::DesiredWithinRange));
    }

    #[test]
    fn scale_down_waits_five_minutes_then_halves_per_minute() {
        let mut hpa = Hpa::new(project_spec());
        let mut current = 8;
        // Busy until 0 s, idle afterwards.
        hpa.sync(secs(0), current, 8);
        let mut changes = vec![];
        for t in (15..=900).step_by(15) {
            let d = hpa.sync(secs(t), current, 1);
            if d.desired != current {
                changes.push((t, d.desired));
            }
            current = d.desired;
        }
        // The proposal of 8 at 0 s leaves the 300 s window at 315 s (strictly older).
        // Percent 50 per 60 s: 8 ⇒ 4, a minute later ⇒ 2, then ⇒ 1.
        assert_eq!(changes, vec![(300, 4), (360, 2), (420, 1)]);
    }

    #[test]
    fn a_fresh_controller_does_not_scale_down_at_once() {
        let mut hpa = Hpa::new(project_spec());
        let d = hpa.sync(secs(0), 4, 1);
        assert_eq!((d.desired, d.reason), (4, Reason::ScaleDownStabilized));
    }

    #[test]
    fn min_and_max_are_enforced_before_metrics() {
        let mut hpa = Hpa::new(project_spec());
        assert_eq!(hpa.sync(secs(0), 0, 5).desired, 1);
        assert_eq!(hpa.sync(secs(15), 12, 5).desired, 10);
    }

    #[test]
    fn default_rules_and_select_policies() {
        let mut spec = project_spec();
        spec.scale_up = Rules::default_scale_up();
        let mut hpa = Hpa::new(spec.clone());
        // No window: 1 ⇒ max(2, 1 + 4) = 5 at once.
        assert_eq!(hpa.sync(secs(0), 1, 10).desired, 5);
        spec.scale_up.select = SelectPolicy::Min;
        let mut hpa = Hpa::new(spec.clone());
        assert_eq!(hpa.sync(secs(0), 1, 10).desired, 2);
        spec.scale_up.select = SelectPolicy::Disabled;
        let mut hpa = Hpa::new(spec);
        assert_eq!(hpa.sync(secs(0), 1, 10).desired, 1);
    }

    #[test]
    fn compression_divides_every_duration() {
        let spec = project_spec().compressed(5.0);
        assert_eq!(spec.sync_period, secs(3));
        assert_eq!(spec.scale_up.stabilization, secs(12));
        assert_eq!(spec.scale_down.stabilization, secs(60));
        assert_eq!(spec.scale_down.policies[0].period, secs(12));
        assert_eq!(project_spec().compressed(1.0), project_spec());
    }
}
