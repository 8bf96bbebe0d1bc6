//! Act on actors: each group (stable, canary) placed on its revision's live workers, by the
//! rollout state just decided.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use kube::ResourceExt;
use troupe_crds::{Actor, ActorPool};

use super::{
    Error,
    commands::pool_event,
    deletion_cost::costs,
    observe::{Groups, Snapshot},
};
use crate::{
    context::Context,
    placement::{Step, WorkerSlot, apply_steps, plan, write::MOVING},
    revisions::Workers,
    rollout::Rollout,
};

/// What the placement did.
pub(super) struct Placed {
    /// Actors no live worker had room for.
    pub unplaced: usize,
    /// Actors that changed under the decision (decided again soon).
    pub conflicts: usize,
    /// Plain placements written.
    pub placed: usize,
    pub error: Option<Error>,
}

/// The Event's reason when actors are moved off a worker that is leaving.
const WORKER_LEAVING: &str = "WorkerLeaving";

/// The pool's Events for the releases written, one per reconcile: actors moved off workers that
/// are leaving (each worker named), and the others (balance, a rollout's step) in one sentence.
fn release_notes(released: &BTreeMap<String, usize>, snap: &Snapshot) -> Vec<(&'static str, String)> {
    let leaving: BTreeSet<&str> = snap.leaving().map(|w| w.name.as_str()).collect();
    let mut notes = Vec::new();
    let (mut others, mut total) = (Vec::new(), 0);
    for (worker, n) in released {
        if leaving.contains(worker.as_str()) {
            let note = format!(
                "moving {n} actors off worker {worker}, which is leaving (scale-in, rollout or drain): each hands its state over to its next worker"
            );
            notes.push((WORKER_LEAVING, note));
        } else {
            others.push(format!("{n} off worker {worker}"));
            total += n;
        }
    }
    if !others.is_empty() {
        let note = format!(
            "moving {total} actors ({}) to balance the pool or follow its rollout: each hands its state over to its next worker",
            others.join(", ")
        );
        // The reason the moved actors' `Placed` condition gives meanwhile.
        notes.push((MOVING, note));
    }
    notes
}

/// The live workers of `rev` a scale-down to `planned` will remove: the surplus, fewest actors
/// first (as their pods' deletion cost tells the ReplicaSet controller, see `deletion_cost`).
/// No actor is moved onto them to balance the pool: it would only move again when they leave.
fn going_in_scale_in(snap: &Snapshot, rev: &str, planned: Option<&Workers>) -> BTreeSet<String> {
    let Some(planned) = planned else {
        return BTreeSet::new();
    };
    let wanted = planned.replicas().max(0) as usize;
    let mut by_cost: Vec<(i32, String)> = costs(snap, rev).into_iter().map(|(w, c)| (c, w)).collect();
    by_cost.sort();
    let surplus = by_cost.len().saturating_sub(wanted);
    by_cost.into_iter().take(surplus).map(|(_, w)| w).collect()
}

pub(super) async fn place_actors(
    ctx: &Arc<Context>,
    pool: &ActorPool,
    snap: &Snapshot,
    next: &Rollout,
    planned: &BTreeMap<String, Workers>,
) -> Placed {
    let groups = Groups::of(next, snap);
    let capacity = pool.spec.actors_per_worker.max(1) as usize;
    let slots = |rev: &str| -> Vec<WorkerSlot> {
        let going = going_in_scale_in(snap, rev, planned.get(rev));
        snap.workers_of(rev)
            .into_iter()
            .map(|w| WorkerSlot {
                name: w.name.clone(),
                capacity,
                settled: w.settled && !going.contains(&w.name),
            })
            .collect()
    };
    let (canary_refs, stable_refs): (Vec<&Actor>, Vec<&Actor>) = snap
        .actors
        .iter()
        .map(|a| a.as_ref())
        .partition(|a| groups.canary.contains(&a.name_any()));
    let mut steps = plan(&stable_refs, &snap.live_names, &slots(&groups.stable_revision));
    if let Some(rev) = &groups.canary_revision {
        steps.extend(plan(&canary_refs, &snap.live_names, &slots(rev)));
    }
    if !steps.is_empty() {
        tracing::debug!(pool = %snap.name, live = ?snap.live_names, ?steps, "placement steps");
    }
    let unplaced = steps
        .iter()
        .filter(|s| matches!(s, Step::Unplaceable { .. }))
        .count();
    let applied = apply_steps(
        ctx,
        &snap.ns,
        &snap.name,
        &snap.actors,
        steps,
        &snap.revision_of_worker,
    )
    .await;
    // Starting up is normal: said once per reconcile on the pool, not as a Warning per actor.
    if unplaced > 0 && snap.live.is_empty() {
        let note = format!("{unplaced} actors wait for the pool's workers to start");
        pool_event(ctx, pool, &snap.target, false, "WaitingForWorkers", note).await;
    }
    for (reason, note) in release_notes(&applied.released, snap) {
        pool_event(ctx, pool, &snap.target, false, reason, note).await;
    }
    // What was written, not what was planned: a refused write is decided again, not announced.
    if applied.placed > 0 {
        let note = format!(
            "placed {} actors on live workers (each Actor's status names its worker)",
            applied.placed
        );
        pool_event(ctx, pool, &snap.target, false, "Placed", note).await;
    }
    Placed {
        unplaced,
        conflicts: applied.conflicts,
        placed: applied.placed,
        error: applied.error,
    }
}
