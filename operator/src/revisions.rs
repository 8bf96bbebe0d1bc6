//! Which revisions of a pool run, with how many workers, and which actors go to which revision:
//! pure functions of the rollout state, tested without a server.
//!
//! The canary weight is the share of the pool's actors placed on the canary revision's workers:
//! work is split through placement, no service mesh needed.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};
use troupe_crds::ActorPool;

use crate::rollout::{Rollout, canary_replicas, rollback_window, scale_down_delay};

/// What to do with one revision's Deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    /// The current template's revision: apply the whole Deployment with this many replicas.
    Apply(i32),
    /// An older revision: only set its replica count (its template is no longer in the spec).
    Scale(i32),
    /// Not needed any more: delete it once no actor is on it.
    Retire,
}

impl Workers {
    /// The workers this revision is to have (none once retired).
    pub fn replicas(self) -> i32 {
        match self {
            Workers::Apply(n) | Workers::Scale(n) => n,
            Workers::Retire => 0,
        }
    }
}

fn not_elapsed(since: Option<Timestamp>, now: Timestamp, d: k8s_openapi::jiff::SignedDuration) -> bool {
    since.is_some_and(|s| now.duration_since(s) < d)
}

/// The plan for every revision that has or should have a Deployment. `existing` maps the
/// revisions with a Deployment to their current replica count.
pub fn plan_workers(
    pool: &ActorPool,
    r: &Rollout,
    target: &str,
    existing: &BTreeMap<String, i32>,
    now: Timestamp,
) -> BTreeMap<String, Workers> {
    let replicas = pool.spec.replicas.max(0);
    let delay = scale_down_delay(pool);
    let stable = r.stable.as_deref().unwrap_or(target);
    let blue_green = pool
        .spec
        .strategy
        .as_ref()
        .is_some_and(|s| s.blue_green.is_some());
    let mut out = BTreeMap::new();
    let target_replicas = if stable == target {
        replicas
    } else if r.in_progress(target) {
        if blue_green || replicas == 0 {
            replicas
        } else {
            canary_replicas(replicas, r.weight.unwrap_or(0))
        }
    } else {
        // Aborted: kept as it was for the scale-down delay, then scaled to zero (kept for a retry).
        let at = r.abort.as_ref().map(|a| a.time.0);
        if not_elapsed(at, now, delay) {
            existing.get(target).copied().unwrap_or(0)
        } else {
            0
        }
    };
    out.insert(target.to_string(), Workers::Apply(target_replicas));
    if stable != target {
        out.insert(stable.to_string(), Workers::Scale(replicas));
    }
    if let Some(prev) = r.previous.as_deref().filter(|p| *p != target && *p != stable) {
        // Up for the scale-down delay (an instant rollback), then at zero for the rollback window.
        let up = not_elapsed(r.promoted_at, now, delay);
        let kept = not_elapsed(r.promoted_at, now, rollback_window(pool));
        let n = if up { replicas } else { 0 };
        if up || kept {
            out.insert(prev.to_string(), Workers::Scale(n));
        }
    }
    for rev in existing.keys() {
        out.entry(rev.clone()).or_insert(Workers::Retire);
    }
    out
}

fn rank(name: &str) -> [u8; 8] {
    let d = Sha256::digest(name.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// The actors that go to the canary: `weight` percent of them, rounded up (any weight above 0
/// moves at least one actor, so that a small pool's canary has work to be judged on), those already on a
/// canary worker first, then in an order fixed by their names, so that raising the weight only
/// adds actors and lowering it only takes some back.
pub fn canary_actors(actors: &[(String, bool)], weight: i32) -> BTreeSet<String> {
    let n = actors.len();
    let k = (n * weight.clamp(0, 100) as usize).div_ceil(100);
    let mut order: Vec<&(String, bool)> = actors.iter().collect();
    order.sort_by_key(|(name, on_canary)| (!on_canary, rank(name), name.clone()));
    order.into_iter().take(k).map(|(name, _)| name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use troupe_crds::{AbortKind, AbortReason};

    use super::*;

    fn pool(strategy: serde_json::Value) -> ActorPool {
        serde_json::from_value(json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"replicas": 4, "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}},
                     "strategy": strategy, "rollback": {"window": "10m"}}
        }))
        .unwrap()
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn canary() -> ActorPool {
        pool(json!({"canary": {"steps": [{"setWeight": 25}], "scaleDownDelay": "30s"}}))
    }

    #[test]
    fn a_canary_runs_its_share_of_workers_beside_a_full_stable() {
        let r = Rollout {
            stable: Some("a".into()),
            canary: Some("b".into()),
            weight: Some(25),
            ..Default::default()
        };
        let existing = BTreeMap::from([("a".to_string(), 4)]);
        let plan = plan_workers(&canary(), &r, "b", &existing, t(0));
        assert_eq!(plan["b"], Workers::Apply(1));
        assert_eq!(plan["a"], Workers::Scale(4));
    }

    #[test]
    fn blue_green_runs_the_new_revision_in_full() {
        let r = Rollout {
            stable: Some("a".into()),
            canary: Some("b".into()),
            weight: Some(0),
            ..Default::default()
        };
        let plan = plan_workers(&pool(json!({"blueGreen": {}})), &r, "b", &BTreeMap::new(), t(0));
        assert_eq!(plan["b"], Workers::Apply(4));
    }

    #[test]
    fn the_previous_revision_stays_up_for_the_delay_then_at_zero_for_the_window_then_retires() {
        let r = Rollout {
            stable: Some("b".into()),
            previous: Some("a".into()),
            promoted_at: Some(t(0)),
            ..Default::default()
        };
        let existing = BTreeMap::from([("a".to_string(), 4), ("b".to_string(), 4), ("z".to_string(), 2)]);
        let plan = plan_workers(&canary(), &r, "b", &existing, t(10));
        assert_eq!(
            (plan["a"], plan["b"], plan["z"]),
            (Workers::Scale(4), Workers::Apply(4), Workers::Retire)
        );
        assert_eq!(
            plan_workers(&canary(), &r, "b", &existing, t(31))["a"],
            Workers::Scale(0)
        );
        assert_eq!(
            plan_workers(&canary(), &r, "b", &existing, t(601))["a"],
            Workers::Retire
        );
    }

    #[test]
    fn an_aborted_canary_keeps_its_workers_for_the_delay_then_scales_to_zero() {
        let r = Rollout {
            stable: Some("a".into()),
            abort: Some(AbortReason {
                kind: AbortKind::Analysis,
                revision: "b".into(),
                metric: None,
                value: None,
                threshold: None,
                alert: None,
                message: String::new(),
                time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(0)),
                detected_at: None,
                completed_at: None,
            }),
            ..Default::default()
        };
        let existing = BTreeMap::from([("a".to_string(), 4), ("b".to_string(), 2)]);
        assert_eq!(
            plan_workers(&canary(), &r, "b", &existing, t(5))["b"],
            Workers::Apply(2)
        );
        assert_eq!(
            plan_workers(&canary(), &r, "b", &existing, t(30))["b"],
            Workers::Apply(0)
        );
    }

    #[test]
    fn the_canary_share_grows_by_adding_actors_and_keeps_those_already_there() {
        let actors: Vec<(String, bool)> = (0..100).map(|i| (format!("a{i}"), false)).collect();
        let at10 = canary_actors(&actors, 10);
        assert_eq!(at10.len(), 10);
        let now: Vec<(String, bool)> = actors
            .iter()
            .map(|(n, _)| (n.clone(), at10.contains(n)))
            .collect();
        let at25 = canary_actors(&now, 25);
        assert_eq!(at25.len(), 25);
        assert!(at10.is_subset(&at25));
        assert_eq!(canary_actors(&now, 0).len(), 0);
        assert_eq!(canary_actors(&now, 100).len(), 100);
        assert_eq!(
            canary_actors(&[("x".into(), false), ("y".into(), false)], 10).len(),
            1,
            "any weight above zero moves an actor"
        );
    }
}
