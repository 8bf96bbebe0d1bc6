//! The pool's status: built from what this reconcile saw and decided, written once, only when it
//! changed.

use std::collections::BTreeMap;

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};
use troupe_crds::{ActorPhase, ActorPool, ActorPoolStatus, PoolPhase, common::Condition, labels};

use super::{Error, commands::pool_event, observe::Snapshot, place::Placed, workers::WorkersApplied};
use crate::{
    context::{Context, MANAGER},
    rollout::Decision,
};

/// Writes the pool's status if it differs from `status` (what the cache showed).
pub(super) async fn write_status(
    ctx: &Context,
    pool: &ActorPool,
    status: &ActorPoolStatus,
    snap: &Snapshot,
    decision: &Decision,
    workers: &WorkersApplied,
    placed: &Placed,
) -> Result<(), Error> {
    let next = &decision.next;
    let (actors, name, now) = (&snap.actors, &snap.name, snap.now);
    let mut by_phase: BTreeMap<String, i32> = BTreeMap::new();
    for a in actors {
        let phase = a
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(ActorPhase::Pending);
        *by_phase.entry(format!("{phase:?}")).or_default() += 1;
    }
    let ready_workers = snap.live.len() as i32;
    let stable_live = snap
        .workers_of(next.stable.as_deref().unwrap_or(&snap.target))
        .len() as i32;
    let unplaced = placed.unplaced;
    let workers_ok = stable_live >= pool.spec.replicas && unplaced == 0;
    let phase = match decision.phase {
        PoolPhase::Healthy if !workers_ok => PoolPhase::Degraded,
        p => p,
    };
    let available = ready_workers > 0 || pool.spec.replicas == 0;
    let (reason, message) = if workers_ok {
        (
            "AllWorkersReady",
            format!(
                "{stable_live} workers of the stable revision ready, {} actors",
                actors.len()
            ),
        )
    } else {
        (
            "WorkersMissing",
            format!(
                "{stable_live} of {} workers of the stable revision ready; {unplaced} actors without a worker",
                pool.spec.replicas
            ),
        )
    };
    let (p_status, p_reason, p_message) = decision.progressing.clone();
    let deployed = match &workers.error {
        None => (
            true,
            "Deployed",
            "every revision's Deployment is as planned".to_string(),
        ),
        Some(e) => (false, "DeploymentRejected", e.to_string()),
    };
    let newly_rejected = workers.error.is_some()
        && !status.conditions.iter().any(|c| {
            c.type_ == "WorkersDeployed" && c.reason == "DeploymentRejected" && c.message == deployed.2
        });
    if newly_rejected {
        pool_event(
            ctx,
            pool,
            &snap.target,
            true,
            "DeploymentRejected",
            deployed.2.clone(),
        )
        .await;
    }
    let cond = |type_: &str, ok: bool, reason: &str, message: &str, prev: &[Condition]| {
        let same = prev
            .iter()
            .find(|c| c.type_ == type_)
            .filter(|c| (c.status == "True") == ok && c.reason == reason && c.message == message);
        match same {
            Some(c) => serde_json::to_value(c).unwrap_or_default(),
            None => json!({
                "type": type_, "status": if ok { "True" } else { "False" },
                "reason": reason, "message": message,
                "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
                "observedGeneration": pool.metadata.generation,
            }),
        }
    };
    let mut desired = next.to_json();
    let fields = json!({
        "phase": phase,
        "replicas": workers.ready(),
        "desiredWorkers": workers.desired(),
        "readyWorkers": ready_workers,
        "selector": format!("{}={name}", labels::POOL),
        "actors": {"total": actors.len(), "byPhase": by_phase},
        "observedGeneration": pool.metadata.generation,
        "conditions": [
            cond("Available", available, reason, &message, &status.conditions),
            cond("Progressing", p_status, p_reason, &p_message, &status.conditions),
            cond("WorkersDeployed", deployed.0, deployed.1, &deployed.2, &status.conditions),
        ],
    });
    for (k, v) in fields.as_object().into_iter().flatten() {
        desired[k] = v.clone();
    }
    strip_nulls(&mut desired);
    let mut now_json = serde_json::to_value(status).unwrap_or_default();
    strip_nulls(&mut now_json);
    if desired != now_json {
        let patch = json!({"apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool", "status": desired});
        let after = Api::<ActorPool>::namespaced(ctx.client.clone(), &snap.ns)
            .patch_status(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(patch))
            .await
            .map_err(Error::WriteStatus)?;
        ctx.wrote(pool, &after);
    }
    Ok(())
}

/// Drops null fields (recursively), so that a desired status compares equal to the stored one.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
