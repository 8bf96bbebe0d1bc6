//! The Deployment controller's decisions, as pure functions: which pods to create or delete,
//! and what the Deployment's status is.

use std::{
    cmp::Ordering,
    collections::BTreeMap,
    fmt,
    time::{Duration, SystemTime},
};

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentCondition, DeploymentStatus},
        core::v1::PodTemplateSpec,
    },
    apimachinery::pkg::apis::meta::v1::Time,
};
use sha2::{Digest, Sha256};

use super::pod::Pod;

/// A Deployment's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeploymentKey {
    pub namespace: String,
    pub name: String,
}

impl DeploymentKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
    pub fn of(d: &Deployment) -> Self {
        Self::new(
            d.metadata.namespace.as_deref().unwrap_or("default"),
            d.metadata.name.as_deref().unwrap_or_default(),
        )
    }
}

impl fmt::Display for DeploymentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The pod-template-hash: pods of one template share it; a template change makes new pods.
pub fn template_hash(t: &PodTemplateSpec) -> String {
    let bytes = serde_json::to_vec(t).expect("a pod template serializes");
    let digest = Sha256::digest(&bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the controller does to a Deployment's pods in one pass.
#[derive(Debug, PartialEq, Eq)]
pub enum PlanStep {
    Create,
    Delete(String),
}

/// What the planner needs of a pod: its template, and what the ReplicaSet controller ranks it by
/// when it picks pods to delete (from the pod's state and its Pod object in the API).
#[derive(Clone, Debug, Default)]
pub struct PodFacts {
    pub name: String,
    pub uid: String,
    pub hash: String,
    pub terminating: bool,
    /// Phase Running (a container has started); else Pending.
    pub running: bool,
    pub ready: bool,
    /// When the Ready condition last turned True (its lastTransitionTime).
    pub ready_since: Option<SystemTime>,
    /// The most restarts of any one container.
    pub restarts: u32,
    /// The Pod's creationTimestamp.
    pub created: Option<SystemTime>,
    /// The `controller.kubernetes.io/pod-deletion-cost` annotation (0 when unset or invalid).
    pub deletion_cost: i32,
}

/// The annotation that orders pods of one ReplicaSet for deletion: lower cost goes first.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// A pod's deletion cost, read as kube reads it: an int32 in plain decimal ("+1" and "007" are
/// not); an absent or invalid value counts as 0.
pub fn deletion_cost(annotations: &BTreeMap<String, String>) -> i32 {
    let Some(v) = annotations.get(DELETION_COST) else {
        return 0;
    };
    // "+1" and "007" parse as numbers, but kube refuses them.
    let first_ok = matches!(v.as_bytes(), [b'-', ..] | [b'0'] | [b'1'..=b'9', ..]);
    if !first_ok {
        return 0;
    }
    v.parse::<i32>().unwrap_or(0)
}

/// Which of two pods of one ReplicaSet goes first on scale-down (`Less`: `a` does), as the
/// upstream ReplicaSet controller ranks them (`ActivePodsWithRanks.Less` in
/// k8s.io/kubernetes pkg/controller/controller_utils.go, with LogarithmicScaleDown, on by
/// default): Pending before Running; not ready before ready; lower pod-deletion-cost first;
/// ready for less time first; more container restarts first; created more recently first.
/// Times are compared on a logarithmic scale (two pods ready or created within the same power
/// of two of nanoseconds ago are equals), ties then broken by uid. The rules about unassigned
/// pods and pods doubled up on one node do not apply here (one node, every pod on it); the name
/// breaks the last ties, where upstream leaves the order to the sort.
pub fn deletion_order(a: &PodFacts, b: &PodFacts, now: SystemTime) -> Ordering {
    a.running
        .cmp(&b.running)
        .then(a.ready.cmp(&b.ready))
        .then(a.deletion_cost.cmp(&b.deletion_cost))
        .then_with(|| {
            if a.ready && b.ready {
                newer_first(a.ready_since, b.ready_since, now, a, b)
            } else {
                Ordering::Equal
            }
        })
        .then(b.restarts.cmp(&a.restarts))
        .then_with(|| newer_first(a.created, b.created, now, a, b))
        .then_with(|| a.name.cmp(&b.name))
}

/// Later times first, on upstream's logarithmic scale; an unknown time before any other.
fn newer_first(
    ta: Option<SystemTime>,
    tb: Option<SystemTime>,
    now: SystemTime,
    a: &PodFacts,
    b: &PodFacts,
) -> Ordering {
    match (ta, tb) {
        _ if ta == tb => Ordering::Equal,
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
        (Some(ta), Some(tb)) => match log2_age(ta, now).cmp(&log2_age(tb, now)) {
            Ordering::Equal => a.uid.cmp(&b.uid),
            other => other,
        },
    }
}

/// ⌊log2(nanoseconds since t)⌋, or -1 for a time not in the past (upstream's rank).
fn log2_age(t: SystemTime, now: SystemTime) -> i64 {
    match now.duration_since(t) {
        Ok(d) if !d.is_zero() => (d.as_nanos() as f64).log2() as i64,
        _ => -1,
    }
}

/// Brings the pods toward `replicas` pods of the current template.
///
/// Rolling update with full surge: all new pods are created at once; each new pod that is ready
/// lets one old pod go, so the ready count never drops below what the old pods gave. Pods are
/// deleted in the ReplicaSet controller's order ([`deletion_order`]).
pub fn plan(replicas: i32, hash: &str, pods: &[PodFacts], now: SystemTime) -> Vec<PlanStep> {
    let desired = replicas.max(0) as usize;
    let live: Vec<&PodFacts> = pods.iter().filter(|p| !p.terminating).collect();
    let (mut new, mut old): (Vec<&PodFacts>, Vec<&PodFacts>) = live.iter().partition(|p| p.hash == hash);
    let mut steps = Vec::new();
    for _ in new.len()..desired {
        steps.push(PlanStep::Create);
    }
    let order = |a: &&PodFacts, b: &&PodFacts| deletion_order(a, b, now);
    new.sort_by(order);
    if new.len() > desired {
        for p in &new[..new.len() - desired] {
            steps.push(PlanStep::Delete(p.name.clone()));
        }
        new.drain(..new.len() - desired);
    }
    let ready_new = new.iter().filter(|p| p.ready).count();
    let keep_old = desired.saturating_sub(ready_new);
    old.sort_by(order);
    if old.len() > keep_old {
        for p in &old[..old.len() - keep_old] {
            steps.push(PlanStep::Delete(p.name.clone()));
        }
    }
    steps
}

/// The status the Deployment should have, or `None` when what it has is already right
/// (so a quiet cluster causes no writes).
pub fn status_for(
    d: &Deployment,
    hash: &str,
    pods: &[&Pod],
    min_ready: Duration,
) -> Option<DeploymentStatus> {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let live: Vec<_> = pods.iter().filter(|p| !p.is_terminating()).collect();
    let replicas = live.len() as i32;
    let updated = live.iter().filter(|p| p.template_hash == hash).count() as i32;
    let ready = live.iter().filter(|p| p.is_ready()).count() as i32;
    let available = live.iter().filter(|p| p.is_available(min_ready)).count() as i32;
    let current = d.status.clone().unwrap_or_default();
    let condition = |kind: &str, ok: bool, reason: &str, message: String| {
        let old = current
            .conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
            .cloned();
        let status = if ok { "True" } else { "False" }.to_string();
        let unchanged = old
            .as_ref()
            .is_some_and(|c| c.status == status && c.reason.as_deref() == Some(reason));
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        DeploymentCondition {
            type_: kind.into(),
            status,
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: if unchanged {
                old.as_ref().and_then(|c| c.last_transition_time.clone())
            } else {
                Some(now.clone())
            },
            last_update_time: if unchanged {
                old.and_then(|c| c.last_update_time)
            } else {
                Some(now)
            },
        }
    };
    let all_updated = updated == desired && replicas == desired && available == desired;
    let conditions = vec![
        condition(
            "Available",
            available >= desired,
            if available >= desired {
                "MinimumReplicasAvailable"
            } else {
                "MinimumReplicasUnavailable"
            },
            format!("{available} of {desired} replicas available"),
        ),
        condition(
            "Progressing",
            true,
            if all_updated {
                "NewReplicaSetAvailable"
            } else {
                "ReplicaSetUpdated"
            },
            format!(
                "{updated} of {desired} replicas updated to template {}",
                &hash[..10]
            ),
        ),
    ];
    let status = DeploymentStatus {
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired - available).max(0)),
        observed_generation: d.metadata.generation,
        conditions: Some(conditions),
        ..Default::default()
    };
    let same = |a: &DeploymentStatus, b: &DeploymentStatus| {
        let cond = |s: &DeploymentStatus| {
            s.conditions
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c.type_, c.status, c.reason, c.message))
                .collect::<Vec<_>>()
        };
        a.replicas.unwrap_or(0) == b.replicas.unwrap_or(0)
            && a.updated_replicas.unwrap_or(0) == b.updated_replicas.unwrap_or(0)
            && a.ready_replicas.unwrap_or(0) == b.ready_replicas.unwrap_or(0)
            && a.available_replicas.unwrap_or(0) == b.available_replicas.unwrap_or(0)
            && a.unavailable_replicas.unwrap_or(0) == b.unavailable_replicas.unwrap_or(0)
            && a.observed_generation == b.observed_generation
            && cond(a) == cond(b)
    };
    if same(&status, &current) {
        None
    } else {
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_SECS: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
    }

    fn ago(secs: u64) -> Option<SystemTime> {
        Some(now() - Duration::from_secs(secs))
    }

    /// A running pod of template `hash`, ready for 100 s, created 200 s ago.
    fn pod(name: &str, hash: &str, ready: bool) -> PodFacts {
        PodFacts {
            name: name.into(),
            uid: format!("uid-{name}"),
            hash: hash.into(),
            running: true,
            ready,
            ready_since: if ready { ago(100) } else { None },
            created: ago(200),
            ..Default::default()
        }
    }

    fn first(a: &PodFacts, b: &PodFacts) -> String {
        let mut pods = [a, b];
        pods.sort_by(|x, y| deletion_order(x, y, now()));
        pods[0].name.clone()
    }

    #[test]
    fn an_empty_deployment_gets_all_its_replicas() {
        assert_eq!(
            plan(3, "h", &[], now()),
            vec![PlanStep::Create, PlanStep::Create, PlanStep::Create]
        );
    }

    #[test]
    fn scaling_down_deletes_pods_that_are_not_ready_first() {
        let pods = [pod("a", "h", true), pod("b", "h", false), pod("c", "h", true)];
        assert_eq!(plan(2, "h", &pods, now()), vec![PlanStep::Delete("b".into())]);
    }

    #[test]
    fn scaling_down_deletes_the_pod_with_the_lowest_deletion_cost() {
        let mut pods = [pod("a", "h", true), pod("b", "h", true), pod("c", "h", true)];
        pods[0].deletion_cost = 5;
        pods[2].deletion_cost = -3;
        assert_eq!(plan(2, "h", &pods, now()), vec![PlanStep::Delete("c".into())]);
        assert_eq!(
            plan(1, "h", &pods, now()),
            vec![PlanStep::Delete("c".into()), PlanStep::Delete("b".into())]
        );
    }

    #[test]
    fn a_template_change_keeps_old_pods_until_new_ones_are_ready() {
        let pods = [pod("old-1", "h1", true), pod("old-2", "h1", true)];
        assert_eq!(
            plan(2, "h2", &pods, now()),
            vec![PlanStep::Create, PlanStep::Create]
        );
        let pods = [
            pod("old-1", "h1", true),
            pod("old-2", "h1", true),
            pod("new-1", "h2", true),
            pod("new-2", "h2", false),
        ];
        assert_eq!(
            plan(2, "h2", &pods, now()),
            vec![PlanStep::Delete("old-1".into())]
        );
        let pods = [
            pod("old-2", "h1", true),
            pod("new-1", "h2", true),
            pod("new-2", "h2", true),
        ];
        assert_eq!(
            plan(2, "h2", &pods, now()),
            vec![PlanStep::Delete("old-2".into())]
        );
    }

    #[test]
    fn a_settled_deployment_needs_nothing() {
        let pods = [pod("a", "h", true), pod("b", "h", true)];
        assert!(plan(2, "h", &pods, now()).is_empty());
    }

    #[test]
    fn a_pending_pod_goes_before_a_running_one_even_with_a_higher_deletion_cost() {
        let mut pending = pod("pending", "h", false);
        pending.running = false;
        pending.deletion_cost = 100;
        assert_eq!(first(&pod("running", "h", false), &pending), "pending");
    }

    #[test]
    fn a_pod_not_ready_goes_before_a_ready_one_even_with_a_higher_deletion_cost() {
        let mut unready = pod("unready", "h", false);
        unready.deletion_cost = 100;
        assert_eq!(first(&pod("ready", "h", true), &unready), "unready");
    }

    #[test]
    fn a_lower_deletion_cost_goes_first_even_when_the_pod_is_the_oldest() {
        let mut oldest = pod("oldest", "h", true);
        (oldest.ready_since, oldest.created) = (ago(10_000), ago(20_000));
        oldest.deletion_cost = -1;
        assert_eq!(first(&pod("newer", "h", true), &oldest), "oldest");
        oldest.deletion_cost = 0;
        assert_eq!(first(&pod("newer", "h", true), &oldest), "newer");
    }

    #[test]
    fn among_equal_costs_the_pod_ready_for_less_time_goes_first() {
        let mut recent = pod("recent", "h", true);
        // Created earlier, but ready later: the ready time counts first.
        (recent.ready_since, recent.created) = (ago(10), ago(5_000));
        assert_eq!(first(&pod("long-ready", "h", true), &recent), "recent");
    }

    #[test]
    fn times_within_the_same_power_of_two_tie_and_the_uid_decides() {
        // 100 s and 120 s ago are both between 2^36 and 2^37 ns: equals on the log scale.
        let mut a = pod("a", "h", true);
        let mut b = pod("b", "h", true);
        (a.ready_since, a.uid) = (ago(100), "uid-2".into());
        (b.ready_since, b.uid) = (ago(120), "uid-1".into());
        assert_eq!(first(&a, &b), "b");
        b.uid = "uid-3".into();
        assert_eq!(first(&a, &b), "a");
    }

    #[test]
    fn more_restarts_go_first_when_ready_times_tie() {
        let mut crashy = pod("crashy", "h", true);
        crashy.restarts = 2;
        assert_eq!(first(&pod("steady", "h", true), &crashy), "crashy");
    }

    #[test]
    fn the_newest_pod_goes_first_when_nothing_else_differs() {
        let mut newest = pod("z-newest", "h", false);
        newest.created = ago(5);
        assert_eq!(first(&pod("a-older", "h", false), &newest), "z-newest");
        newest.created = None;
        assert_eq!(
            first(&pod("a-older", "h", false), &newest),
            "z-newest",
            "no creation time goes first"
        );
    }

    #[test]
    fn deletion_costs_are_read_as_kube_reads_them() {
        let cost = |v: &str| deletion_cost(&[(DELETION_COST.to_string(), v.to_string())].into());
        assert_eq!(cost("-5"), -5);
        assert_eq!(cost("10"), 10);
        assert_eq!(cost("0"), 0);
        assert_eq!(cost("-2147483648"), i32::MIN);
        for invalid in ["+1", "007", "", "abc", "1.5", "2147483648", " 3"] {
            assert_eq!(cost(invalid), 0, "{invalid:?} counts as 0");
        }
        assert_eq!(deletion_cost(&BTreeMap::new()), 0);
    }

    #[test]
    fn template_hashes_differ_when_the_template_does() {
        let mut t = PodTemplateSpec::default();
        let a = template_hash(&t);
        t.metadata = Some(Default::default());
        t.metadata.as_mut().unwrap().labels = Some([("x".to_string(), "y".to_string())].into());
        assert_ne!(a, template_hash(&t));
        assert_eq!(a.len(), 64);
    }
}
