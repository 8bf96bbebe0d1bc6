//! The pool's status: built from what this reconcile saw and decided, typed (`ActorPoolStatus`),
//! conditions through one helper that owns `lastTransitionTime`, written once, only when it
//! changed.

use std::collections::BTreeMap;

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;
use troupe_crds::{
    ActorCounts, ActorPhase, ActorPool, ActorPoolStatus, HandledCommand, PoolPhase,
    common::{condition, set_condition},
    labels,
};

use super::{Error, commands::pool_event, observe::Snapshot, place::Placed, workers::WorkersApplied};
use crate::{
    context::{Context, MANAGER},
    rollout::Decision,
};

/// Condition types and reasons of a pool's status.
pub mod reasons {
    pub const AVAILABLE: &str = "Available";
    pub const PROGRESSING: &str = "Progressing";
    pub const WORKERS_DEPLOYED: &str = "WorkersDeployed";
    pub const ALL_WORKERS_READY: &str = "AllWorkersReady";
    pub const WORKERS_MISSING: &str = "WorkersMissing";
    pub const DEPLOYED: &str = "Deployed";
    pub const DEPLOYMENT_REJECTED: &str = "DeploymentRejected";
    pub use crate::deployment::{INVALID_WORKER_SETTINGS, SERVICE_ACCOUNT_NOT_ALLOWED};
}

/// What this reconcile saw and did that the status reports.
pub(super) struct Outcome<'a> {
    pub snap: &'a Snapshot,
    pub decision: &'a Decision,
    pub workers: &'a WorkersApplied,
    pub placed: &'a Placed,
    /// The rollout command to record as acted on (see `commands::last_command`).
    pub last_command: Option<HandledCommand>,
}

/// The pool's status after this reconcile (pure): `status` (what the cache showed) with the
/// rollout's fields, counts and conditions of `o`.
pub(super) fn desired_status(pool: &ActorPool, status: &ActorPoolStatus, o: Outcome<'_>) -> ActorPoolStatus {
    let (snap, decision) = (o.snap, o.decision);
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
    let ready_workers = snap.live.iter().filter(|w| !w.leaving).count() as i32;
    let stable_live = snap
        .workers_of(next.stable.as_deref().unwrap_or(&snap.target))
        .len() as i32;
    let unplaced = o.placed.unplaced;
    let workers_ok = stable_live >= pool.spec.replicas && unplaced == 0;
    let phase = match decision.phase {
        PoolPhase::Healthy if !workers_ok => PoolPhase::Degraded,
        p => p,
    };
    let available = ready_workers > 0 || pool.spec.replicas == 0;
    let (reason, message) = if workers_ok {
        (
            reasons::ALL_WORKERS_READY,
            format!(
                "{stable_live} workers of the stable revision ready, {} actors",
                actors.len()
            ),
        )
    } else {
        (
            reasons::WORKERS_MISSING,
            format!(
                "{stable_live} of {} workers of the stable revision ready; {unplaced} actors without a worker",
                pool.spec.replicas
            ),
        )
    };
    let (p_status, p_reason, p_message) = decision.progressing.clone();
    let deployed = match (&o.workers.refused, &o.workers.error) {
        (Some(refusal), _) => (false, refusal.reason, refusal.message.clone()),
        (None, Some(e)) => (false, reasons::DEPLOYMENT_REJECTED, e.to_string()),
        (None, None) => (
            true,
            reasons::DEPLOYED,
            "every revision's Deployment is as planned".to_string(),
        ),
    };
    let generation = pool.metadata.generation;
    let mut desired = status.clone();
    next.apply_to(&mut desired);
    desired.phase = Some(phase);
    desired.replicas = o.workers.ready();
    desired.desired_workers = o.workers.desired();
    desired.ready_workers = ready_workers;
    desired.selector = Some(format!("{}={name}", labels::POOL));
    desired.actors = ActorCounts {
        total: actors.len() as i32,
        by_phase,
    };
    desired.observed_generation = generation;
    desired.last_command = o.last_command;
    for c in [
        condition(reasons::AVAILABLE, available, reason, message, generation, now),
        condition(
            reasons::PROGRESSING,
            p_status,
            p_reason,
            p_message,
            generation,
            now,
        ),
        condition(
            reasons::WORKERS_DEPLOYED,
            deployed.0,
            deployed.1,
            deployed.2,
            generation,
            now,
        ),
    ] {
        set_condition(&mut desired.conditions, c);
    }
    desired
}

/// The reason and message of a refusal to deploy (by the API server, or by this operator) that
/// `desired` reports and `status` did not.
fn newly_rejected(status: &ActorPoolStatus, desired: &ActorPoolStatus) -> Option<(&'static str, String)> {
    let rejection = |s: &ActorPoolStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == reasons::WORKERS_DEPLOYED && c.status == "False")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    let (reason, message) = rejection(desired)?;
    if rejection(status) == Some((reason.clone(), message.clone())) {
        return None;
    }
    let reason = [
        reasons::SERVICE_ACCOUNT_NOT_ALLOWED,
        reasons::INVALID_WORKER_SETTINGS,
        reasons::DEPLOYMENT_REJECTED,
    ]
    .into_iter()
    .find(|r| *r == reason)?;
    Some((reason, message))
}

/// Writes `desired` if it differs from `status` (what the cache showed), with an Event for a
/// Deployment newly rejected. Returns the pool's resourceVersion after it (the precondition of a
/// later write in this reconcile).
pub(super) async fn write_status(
    ctx: &Context,
    pool: &ActorPool,
    status: &ActorPoolStatus,
    desired: ActorPoolStatus,
    target: &str,
) -> Result<Option<String>, Error> {
    if let Some((reason, message)) = newly_rejected(status, &desired) {
        pool_event(ctx, pool, target, true, reason, message).await;
    }
    if desired == *status {
        return Ok(pool.metadata.resource_version.clone());
    }
    let patch = json!({"apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool", "status": desired});
    let after = Api::<ActorPool>::namespaced(ctx.client.clone(), &pool.namespace().unwrap_or_default())
        .patch_status(
            &pool.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await
        .map_err(Error::WriteStatus)?;
    ctx.wrote(pool, &after);
    Ok(after.metadata.resource_version)
}
