//! The Deployment controller's decisions, as pure functions: which pods to create or delete,
//! and what the Deployment's status is.

use std::{fmt, time::Duration};

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

/// What the planner needs of a pod.
pub trait PodView {
    fn name(&self) -> &str;
    fn hash(&self) -> &str;
    fn ready(&self) -> bool;
    fn terminating(&self) -> bool;
}

impl PodView for &Pod {
    fn name(&self) -> &str {
        &self.name
    }
    fn hash(&self) -> &str {
        &self.template_hash
    }
    fn ready(&self) -> bool {
        self.is_ready()
    }
    fn terminating(&self) -> bool {
        self.is_terminating()
    }
}

/// Brings the pods toward `replicas` pods of the current template.
///
/// Rolling update with full surge: all new pods are created at once; each new pod that is ready
/// lets one old pod go, so the ready count never drops below what the old pods gave. Scaling down
/// deletes pods that are not ready first.
pub fn plan<P: PodView>(replicas: i32, hash: &str, pods: &[P]) -> Vec<PlanStep> {
    let desired = replicas.max(0) as usize;
    let live: Vec<&P> = pods.iter().filter(|p| !p.terminating()).collect();
    let (mut new, mut old): (Vec<&P>, Vec<&P>) = live.iter().partition(|p| p.hash() == hash);
    let mut steps = Vec::new();
    for _ in new.len()..desired {
        steps.push(PlanStep::Create);
    }
    // Not ready first, then newest name last: deterministic.
    let order = |a: &&P, b: &&P| a.ready().cmp(&b.ready()).then_with(|| a.name().cmp(b.name()));
    new.sort_by(order);
    if new.len() > desired {
        for p in &new[..new.len() - desired] {
            steps.push(PlanStep::Delete(p.name().to_string()));
        }
        new.drain(..new.len() - desired);
    }
    let ready_new = new.iter().filter(|p| p.ready()).count();
    let keep_old = desired.saturating_sub(ready_new);
    old.sort_by(order);
    if old.len() > keep_old {
        for p in &old[..old.len() - keep_old] {
            steps.push(PlanStep::Delete(p.name().to_string()));
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

    struct P(&'static str, &'static str, bool);
    impl PodView for P {
        fn name(&self) -> &str {
            self.0
        }
        fn hash(&self) -> &str {
            self.1
        }
        fn ready(&self) -> bool {
            self.2
        }
        fn terminating(&self) -> bool {
            false
        }
    }

    #[test]
    fn an_empty_deployment_gets_all_its_replicas() {
        assert_eq!(
            plan::<P>(3, "h", &[]),
            vec![PlanStep::Create, PlanStep::Create, PlanStep::Create]
        );
    }

    #[test]
    fn scaling_down_deletes_pods_that_are_not_ready_first() {
        let pods = [P("a", "h", true), P("b", "h", false), P("c", "h", true)];
        assert_eq!(plan(2, "h", &pods), vec![PlanStep::Delete("b".into())]);
    }

    #[test]
    fn a_template_change_keeps_old_pods_until_new_ones_are_ready() {
        let pods = [P("old-1", "h1", true), P("old-2", "h1", true)];
        assert_eq!(plan(2, "h2", &pods), vec![PlanStep::Create, PlanStep::Create]);
        let pods = [
            P("old-1", "h1", true),
            P("old-2", "h1", true),
            P("new-1", "h2", true),
            P("new-2", "h2", false),
        ];
        assert_eq!(plan(2, "h2", &pods), vec![PlanStep::Delete("old-1".into())]);
        let pods = [
            P("old-2", "h1", true),
            P("new-1", "h2", true),
            P("new-2", "h2", true),
        ];
        assert_eq!(plan(2, "h2", &pods), vec![PlanStep::Delete("old-2".into())]);
    }

    #[test]
    fn a_settled_deployment_needs_nothing() {
        let pods = [P("a", "h", true), P("b", "h", true)];
        assert!(plan(2, "h", &pods).is_empty());
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
