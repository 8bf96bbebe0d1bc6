//! Writing placement steps: each a status apply and a label write, each conditional on the
//! version the decision (or the previous write) saw. A conflict means the actor changed under
//! the decision — a worker claimed or confirmed, a stale cache — and it is decided again from a
//! fresh copy instead of being overwritten.

use std::{collections::BTreeMap, sync::Arc};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use serde_json::{Value, json};
use troupe_crds::{Actor, ActorPhase, labels};

use super::plan::{Step, coalesce, pending_because};
use crate::{
    context::{Context, MANAGER},
    pool_controller::{Error, WRITES_IN_FLIGHT},
};

/// The reason of `Placed=False` while an actor moves between two live workers (written by the
/// worker that confirms the stop; by the operator when the status does not name that worker).
pub const MOVING: &str = "Moving";

/// Parameters of a JSON merge patch under the operator's field manager (label removal: a merge
/// patch removes a label whoever set it, where an apply only drops what the operator owns).
pub fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// The operator's placement fields of an Actor's status, as a server-side apply conditional on
/// `resource_version` (the version the decision was made from).
pub fn actor_status_patch(
    phase: ActorPhase,
    placement: (Option<&str>, Option<&str>, Option<u64>),
    placed: (bool, &str, &str),
    generation: Option<i64>,
    resource_version: Option<&str>,
) -> Value {
    let (worker, revision, epoch) = placement;
    let now = Timestamp::now();
    let mut status = json!({
        "apiVersion": "troupe.dev/v1alpha1",
        "kind": "Actor",
        "metadata": {"resourceVersion": resource_version},
        "status": {
            "phase": phase,
            "worker": worker,
            "revision": revision,
            "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
            "conditions": [{
                "type": "Placed",
                "status": if placed.0 { "True" } else { "False" },
                "reason": placed.1,
                "message": placed.2,
                "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
                "observedGeneration": generation,
            }]
        }
    });
    if let Some(e) = epoch {
        status["status"]["epoch"] = json!(e);
    }
    status
}

/// The assignment itself, in one write conditional on `resource_version`: the worker label
/// (`None` removes it), with an assignment its epoch, and `released_from` the live worker that
/// must confirm the stop (removed by every other write).
pub fn assignment_patch(
    worker: Option<&str>,
    epoch: Option<u64>,
    released_from: Option<&str>,
    resource_version: Option<&str>,
) -> Value {
    let mut patch = json!({"metadata": {
        "resourceVersion": resource_version,
        "labels": {labels::WORKER: worker, labels::RELEASED_FROM: released_from},
        "annotations": {labels::HANDOFF_FROM: null},
    }});
    if let Some(e) = epoch {
        patch["metadata"]["annotations"][labels::EPOCH] = json!(e.to_string());
    }
    patch
}

/// Where the state of an actor assigned now waits, when its last run ended by a planned move:
/// the worker that confirmed its stop (phase Migrating) and that run's epoch, as
/// `<pod>/<epoch>` ([`labels::HANDOFF_FROM`]). After a crash there is no such confirmation.
pub fn handoff_from(actor: &Actor) -> Option<String> {
    let status = actor.status.as_ref()?;
    if status.phase != Some(ActorPhase::Migrating) {
        return None;
    }
    Some(format!(
        "{}/{}",
        status.worker.as_deref()?,
        actor.reported_epoch()?
    ))
}

/// The handoff an assignment carries: the confirmed stop the status shows, or the one recorded
/// when the actor had to wait for a worker after it (a `NoWorker` status replaced the Migrating
/// one); placements after a run clear it (`assignment_patch`).
pub fn handoff_for_assignment(actor: &Actor) -> Option<String> {
    handoff_from(actor).or_else(|| {
        // Recorded for the assignment that ended, and only that one: an annotation left from an
        // earlier move (a failover does not clear it) names a state the actor has moved on from.
        let (worker, epoch) = actor.handoff_from_annotation()?;
        (epoch == actor.assignment_epoch()?).then(|| format!("{worker}/{epoch}"))
    })
}

/// Publishes an Event; a failure is logged, never fatal (Events are best effort).
pub async fn publish(ctx: &Context, event: Event, regarding: &k8s_openapi::api::core::v1::ObjectReference) {
    if let Err(e) = ctx.recorder.publish(&event, regarding).await {
        tracing::debug!(error = %e, "publishing an event failed");
    }
}

pub async fn event(ctx: &Context, actor: &Actor, type_: EventType, reason: &str, action: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    publish(ctx, event, &actor.object_ref(&())).await;
}

/// What became of one actor's steps.
enum Applied {
    /// Written (or moot: the actor is gone); `placed` counts its plain placements written,
    /// `released` names the worker it was released from, if that was written.
    Done { placed: usize, released: Option<String> },
    /// The actor changed since the snapshot (409): decided again from a fresh copy.
    Conflict,
}

/// Applies one actor's steps in order, each write conditional on the version the previous one
/// left (the first on the snapshot's), so that nothing is written from a stale copy.
async fn apply_actor_steps(
    ctx: &Context,
    ns: &str,
    pool: &str,
    revision_of_worker: &BTreeMap<String, String>,
    actor: &Actor,
    steps: &[Step],
) -> Result<Applied, Error> {
    let api: Api<Actor> = Api::namespaced(ctx.client.clone(), ns);
    let name = actor.name_any();
    let wrap = |source| Error::WriteActor {
        actor: format!("{ns}/{name}"),
        source,
    };
    let mut version = actor.resource_version();
    let generation = actor.metadata.generation;
    let mut placed = 0;
    let mut released = None;
    // The versions this sequence of writes went through, and the copy the last one returned.
    let mut between = Vec::new();
    let mut written: Option<Actor> = None;
    let remember = |between: Vec<String>, written: Option<Actor>| {
        if let Some(after) = written {
            ctx.actor_writes.wrote(actor, between, after);
        }
    };
    for step in steps {
        // Status first, then the label: the worker acts on the label, so whatever it does
        // (start, confirm a stop) comes after the status that explains it.
        let status = |phase, placement, placed: (bool, &str, &str), version: &Option<String>| {
            actor_status_patch(phase, placement, placed, generation, version.as_deref())
        };
        let mut writes: Vec<(bool, Value)> = Vec::new();
        match step {
            Step::Assign { worker, epoch, .. } => {
                let revision = revision_of_worker.get(worker).map(String::as_str);
                let message = format!("placed on worker {worker}");
                // A new actor (no status yet) gets only its label and epoch: its worker writes
                // where it runs when it claims it. One write instead of two is what keeps 1,000
                // new actors within seconds (docs/benchmarks.md). An actor with a past (Pending,
                // moved, orphaned) gets its status rewritten too, so that no stale reason
                // outlives the placement.
                if actor.status.is_some() {
                    let placement = (Some(worker.as_str()), revision, Some(*epoch));
                    writes.push((
                        true,
                        status(ActorPhase::Placed, placement, (true, "Placed", &message), &None),
                    ));
                }
                let mut assign = assignment_patch(Some(worker), Some(*epoch), None, None);
                assign["metadata"]["annotations"][labels::HANDOFF_FROM] =
                    json!(handoff_for_assignment(actor));
                writes.push((false, assign));
            }
            Step::Release { from, .. } => {
                // The label alone, when the status already names the worker: the actor still
                // runs there (it handles what it accepted), and that worker's confirmation
                // writes the move into the status (phase Migrating, `Placed=False Moving`). A
                // status of the operator's own here would be one more write per moved actor and
                // a phase the running worker puts back before it sees the label go; in a bulk
                // move both queue at the API server.
                if actor.status.as_ref().and_then(|s| s.worker.as_deref()) != Some(from.as_str()) {
                    // Pending, not Migrating: Migrating is the old worker's word that it stopped
                    // it. Named in the status, the worker must confirm before the actor moves on.
                    let message = format!("moving off worker {from} (pool {pool} rebalanced or rolled)");
                    let placement = (Some(from.as_str()), None, None);
                    writes.push((
                        true,
                        status(ActorPhase::Pending, placement, (false, MOVING, &message), &None),
                    ));
                }
                writes.push((false, assignment_patch(None, None, Some(from), None)));
            }
            Step::Orphan { from, .. } => {
                let message = format!("worker {from} is gone (its lease ended); waiting for a live worker");
                writes.push((
                    true,
                    status(
                        ActorPhase::Pending,
                        (None, None, None),
                        (false, "WorkerLost", &message),
                        &None,
                    ),
                ));
                writes.push((false, assignment_patch(None, None, None, None)));
            }
            Step::Unplaceable { .. } => {
                if pending_because(actor, "NoWorker") {
                    continue;
                }
                let message = format!(
                    "no live worker of pool {pool} has room (workers starting, scaled to zero, or at actorsPerWorker capacity)"
                );
                // The status written next replaces the Migrating one: where the state waits is
                // recorded first, for the assignment that comes when a worker has room.
                if let Some(from) = handoff_from(actor) {
                    writes.push((
                        false,
                        json!({"metadata": {"annotations": {labels::HANDOFF_FROM: from}}}),
                    ));
                }
                writes.push((
                    true,
                    status(
                        ActorPhase::Pending,
                        (None, None, None),
                        (false, "NoWorker", &message),
                        &None,
                    ),
                ));
            }
        }
        for (is_status, mut body) in writes {
            body["metadata"]["resourceVersion"] = json!(version);
            let result = if is_status {
                api.patch_status(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(body))
                    .await
            } else {
                api.patch(&name, &merge_params(), &Patch::Merge(body)).await
            };
            match result {
                Ok(after) => {
                    version = after.resource_version();
                    if let Some(previous) = written.replace(after).and_then(|w| w.resource_version()) {
                        between.push(previous);
                    }
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    ctx.metrics.conflicts.inc();
                    remember(between, written);
                    return Ok(Applied::Conflict);
                }
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Applied::Done { placed, released }),
                Err(e) => {
                    remember(between, written);
                    return Err(wrap(e));
                }
            }
        }
        match step {
            Step::Assign { failover: false, .. } => placed += 1,
            Step::Release { from, .. } => released = Some(from.clone()),
            _ => {}
        }
        after_step(ctx, actor, step, !revision_of_worker.is_empty()).await;
    }
    remember(between, written);
    Ok(Applied::Done { placed, released })
}

/// Metrics and Events of a step that was written; `any_live`: the pool has a live worker.
async fn after_step(ctx: &Context, actor: &Actor, step: &Step, any_live: bool) {
    match step {
        Step::Assign { worker, failover, .. } => {
            ctx.metrics.placements.inc();
            if *failover {
                ctx.metrics.failovers.inc();
                let note = format!("its worker's lease ended; placed on worker {worker}");
                event(ctx, actor, EventType::Warning, "FailedOver", "Place", note).await;
            }
            // A plain placement gets no Event of its own (its Placed condition says it): one
            // Event per actor would be a quarter of all writes when thousands are placed. The
            // pool gets one summary Event per reconcile instead.
        }
        // One Event per reconcile on the pool says how many moved off which worker (a bulk
        // move of 1,000 actors is not 1,000 Events queued before their moves).
        Step::Release { .. } => ctx.metrics.moves.inc(),
        Step::Orphan { .. } => {}
        // Workers full, or gone: a Warning on each actor. No worker live at all (a new pool,
        // or one scaled from zero, whose workers are starting) is normal: the pool says it once.
        Step::Unplaceable { .. } if any_live => {
            let note = "no live worker of its pool has room".to_string();
            event(ctx, actor, EventType::Warning, "NoWorker", "Place", note).await;
        }
        Step::Unplaceable { .. } => {}
    }
}

/// What applying a placement did.
#[derive(Debug, Default)]
pub struct StepsApplied {
    /// The first write that failed (other than a conflict).
    pub error: Option<Error>,
    /// Actors that had changed since the snapshot (to be decided again soon).
    pub conflicts: usize,
    /// Plain placements (not failovers) written.
    pub placed: usize,
    /// Releases written, by the worker each actor was released from.
    pub released: BTreeMap<String, usize>,
}

/// Applies placement steps: each actor's steps in order (an orphan is unlabelled before it is
/// assigned), actors in parallel, a bounded number of writes in flight.
pub async fn apply_steps(
    ctx: &Arc<Context>,
    ns: &str,
    pool: &str,
    actors: &[Arc<Actor>],
    steps: Vec<Step>,
    revision_of_worker: &BTreeMap<String, String>,
) -> StepsApplied {
    let by_name: BTreeMap<String, Arc<Actor>> = actors.iter().map(|a| (a.name_any(), a.clone())).collect();
    let mut per_actor: BTreeMap<String, (Arc<Actor>, Vec<Step>)> = BTreeMap::new();
    for step in steps {
        let actor = match &step {
            Step::Assign { actor, .. }
            | Step::Release { actor, .. }
            | Step::Orphan { actor, .. }
            | Step::Unplaceable { actor } => actor.clone(),
        };
        if let Some(a) = by_name.get(&actor) {
            per_actor
                .entry(actor)
                .or_insert_with(|| (a.clone(), Vec::new()))
                .1
                .push(step);
        }
    }
    let revisions = Arc::new(revision_of_worker.clone());
    let per_actor = per_actor
        .into_values()
        .map(|(actor, steps)| (actor, coalesce(steps)));
    let results: Vec<Result<Applied, Error>> = futures::stream::iter(per_actor)
        .map(|(actor, steps)| {
            let (ctx, ns, pool, revisions) =
                (ctx.clone(), ns.to_string(), pool.to_string(), revisions.clone());
            async move { apply_actor_steps(&ctx, &ns, &pool, &revisions, &actor, &steps).await }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    let mut applied = StepsApplied::default();
    for r in results {
        match r {
            Ok(Applied::Done { placed, released }) => {
                applied.placed += placed;
                if let Some(from) = released {
                    *applied.released.entry(from).or_default() += 1;
                }
            }
            Ok(Applied::Conflict) => applied.conflicts += 1,
            Err(e) => {
                tracing::warn!(%pool, error = %e, "placement step failed");
                applied.error.get_or_insert(e);
            }
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(status: Value) -> Actor {
        serde_json::from_value(json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "Actor",
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {"pool": "p", "behavior": "counter"},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn only_a_stop_its_worker_confirmed_leaves_a_state_to_hand_over() {
        let confirmed = actor(json!({"phase": "Migrating", "worker": "w-1", "epoch": 4}));
        assert_eq!(handoff_from(&confirmed).as_deref(), Some("w-1/4"));
        let lost = actor(json!({"phase": "Pending", "worker": null, "epoch": 4}));
        assert_eq!(
            handoff_from(&lost),
            None,
            "a worker that died handed nothing over"
        );
        let moving = actor(json!({"phase": "Pending", "worker": "w-1", "epoch": 4}));
        assert_eq!(handoff_from(&moving), None, "not yet confirmed");
    }

    #[test]
    fn a_handoff_recorded_while_the_actor_waited_for_a_worker_goes_with_its_assignment() {
        let mut waited = actor(json!({"phase": "Pending", "worker": null, "epoch": 4}));
        assert_eq!(handoff_for_assignment(&waited), None);
        waited
            .annotations_mut()
            .insert(labels::HANDOFF_FROM.into(), "w-1/4".into());
        waited.annotations_mut().insert(labels::EPOCH.into(), "4".into());
        assert_eq!(handoff_for_assignment(&waited).as_deref(), Some("w-1/4"));
        // Left from the move before: the actor ran under epoch 5 since (and then failed over).
        waited.annotations_mut().insert(labels::EPOCH.into(), "5".into());
        assert_eq!(
            handoff_for_assignment(&waited),
            None,
            "a stale handoff names a state the actor moved on from"
        );
        let confirmed = actor(json!({"phase": "Migrating", "worker": "w-2", "epoch": 5}));
        assert_eq!(handoff_for_assignment(&confirmed).as_deref(), Some("w-2/5"));
    }

    #[test]
    fn every_placement_write_clears_a_stale_handoff_annotation() {
        let p = assignment_patch(None, None, Some("w-1"), None);
        assert_eq!(p["metadata"]["annotations"][labels::HANDOFF_FROM], Value::Null);
        assert!(
            p["metadata"]["annotations"]
                .as_object()
                .unwrap()
                .contains_key(labels::HANDOFF_FROM)
        );
        let p = assignment_patch(Some("w-2"), Some(5), None, None);
        assert_eq!(p["metadata"]["annotations"][labels::EPOCH], "5");
    }
}
