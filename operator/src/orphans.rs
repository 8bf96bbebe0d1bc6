//! Actors whose pool does not exist: Pending with condition Placed=False reason PoolNotFound, an
//! Event, and no worker label (a pool deleted under its actors leaves them so).

use std::{sync::Arc, time::Duration};

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use troupe_crds::{Actor, ActorPhase, labels};

use crate::{
    context::{Context, MANAGER},
    placement::{actor_status_patch, assignment_patch, is_manual, merge_params, pending_because, worker_of},
};

/// One pass over every actor whose pool is missing.
pub async fn sweep(ctx: &Context) {
    if !ctx.leading() {
        return;
    }
    let pools: std::collections::BTreeSet<(String, String)> = ctx
        .pools
        .state()
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
        .collect();
    for a in ctx.actors.state() {
        let ns = a.namespace().unwrap_or_default();
        if pools.contains(&(ns.clone(), a.spec.pool.clone()))
            || a.metadata.deletion_timestamp.is_some()
            || is_manual(&a)
        {
            continue;
        }
        let labelled = a.labels().contains_key(labels::WORKER);
        if pending_because(&a, "PoolNotFound") && !labelled {
            continue;
        }
        ctx.metrics.reconciles.with_label_values(&["actor"]).inc();
        let api: Api<Actor> = Api::namespaced(ctx.client.clone(), &ns);
        let message = format!("ActorPool {} does not exist in namespace {ns}", a.spec.pool);
        // Taken off its worker like any release: the worker stays named (status and
        // `released-from`) until it confirms the stop, so a pool created again under the same
        // name does not start the actor while the old worker may still run it. Each write is
        // conditional on the version this decision was made from.
        let worker = worker_of(&a);
        let result = async {
            let mut version = a.resource_version();
            if let Some(w) = worker.as_deref() {
                let unlabel = assignment_patch(None, None, Some(w), version.as_deref());
                version = api
                    .patch(&a.name_any(), &merge_params(), &Patch::Merge(unlabel))
                    .await?
                    .resource_version();
            }
            let worker = worker
                .as_deref()
                .or(a.status.as_ref().and_then(|s| s.worker.as_deref()));
            let status = actor_status_patch(
                ActorPhase::Pending,
                (worker, None, None),
                (false, "PoolNotFound", &message),
                a.metadata.generation,
                version.as_deref(),
            );
            api.patch_status(
                &a.name_any(),
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(status),
            )
            .await
        }
        .await;
        match result {
            Ok(_) => {
                let ev = Event {
                    type_: EventType::Warning,
                    reason: "PoolNotFound".into(),
                    note: Some(message),
                    action: "Place".into(),
                    secondary: None,
                };
                let _ = ctx.recorder.publish(&ev, &a.object_ref(&())).await;
            }
            // Changed or deleted meanwhile: looked at again on the next pass.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
            Err(e) => {
                ctx.metrics
                    .errors
                    .with_label_values(&["actor", "write-actor"])
                    .inc();
                tracing::warn!(actor = %a.name_any(), error = %e, "marking an actor without pool failed");
            }
        }
    }
}

/// Sweeps every `every` forever.
pub async fn run(ctx: Arc<Context>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        sweep(&ctx).await;
    }
}
