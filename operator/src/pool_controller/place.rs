//! Act on actors: each group (stable, canary) placed on its revision's live workers, by the
//! rollout state just decided.

use std::sync::Arc;

use kube::ResourceExt;
use troupe_crds::{Actor, ActorPool};

use super::{
    Error,
    commands::pool_event,
    observe::{Groups, Snapshot},
};
use crate::{
    context::Context,
    placement::{Step, WorkerSlot, apply_steps, plan},
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

pub(super) async fn place_actors(
    ctx: &Arc<Context>,
    pool: &ActorPool,
    snap: &Snapshot,
    next: &Rollout,
) -> Placed {
    let groups = Groups::of(next, snap);
    let capacity = pool.spec.actors_per_worker.max(1) as usize;
    let slots = |rev: &str| -> Vec<WorkerSlot> {
        snap.workers_of(rev)
            .into_iter()
            .map(|w| WorkerSlot {
                name: w.name.clone(),
                capacity,
                settled: w.settled,
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
