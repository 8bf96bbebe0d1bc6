//! Scale-in removes the emptiest workers: before a revision's Deployment is scaled down, each of
//! its live workers' pods is annotated with `controller.kubernetes.io/pod-deletion-cost`, the
//! number of actors placed on it. The ReplicaSet controller deletes pods of lower cost first
//! (after pods that are not ready), so the workers that go are those whose leave moves the
//! fewest actors. Best effort, as Kubernetes documents the annotation: a pod that is gone or a
//! patch refused changes only which workers leave, never whether an actor runs once (every
//! leaving worker hands its actors over first, see the worker's `leave`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::Patch};
use serde_json::json;

use super::observe::Snapshot;
use crate::{
    context::Context,
    placement::{merge_params, worker_of},
};

/// The annotation the ReplicaSet controller ranks pods by on scale-down (lower goes first).
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The deletion cost of each live worker of `rev` that is not leaving (its pod is named like
/// its Lease): the actors placed on it.
pub(super) fn costs(snap: &Snapshot, rev: &str) -> BTreeMap<String, i32> {
    let mut costs: BTreeMap<String, i32> = snap.workers_of(rev).iter().map(|w| (w.name.clone(), 0)).collect();
    for actor in &snap.actors {
        if let Some(cost) = worker_of(actor).and_then(|w| costs.get_mut(&w)) {
            *cost = cost.saturating_add(1);
        }
    }
    costs
}

/// Annotates the pods of `rev`'s live workers with their deletion cost, just before their
/// Deployment is scaled down. Needs `patch` on pods (the chart's operator role); a control
/// plane that serves no Pods is left alone.
pub(super) async fn mark_for_scale_in(ctx: &Context, snap: &Snapshot, rev: &str) {
    if !ctx.serves_core("pods").await {
        return;
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &snap.ns);
    for (pod, cost) in costs(snap, rev) {
        let patch = json!({"metadata": {"annotations": {DELETION_COST: cost.to_string()}}});
        match pods.patch(&pod, &merge_params(), &Patch::Merge(patch)).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::warn!(pool = %snap.name, %pod, error = %e, "could not mark a worker's deletion cost; the scale-in may stop a busier worker")
            }
        }
    }
}
