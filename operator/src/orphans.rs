//! Actors whose pool does not exist: Pending with condition Placed=False reason PoolNotFound, an
//! Event, and no worker label (a pool deleted under its actors leaves them so).

use std::{sync::Arc, time::Duration};

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use serde_json::json;
use troupe_crds::{Actor, labels};

use crate::{
    context::{Context, MANAGER},
    placement::{is_manual, merge_params, pending_because},
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
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
        let status = json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "Actor",
            "status": {
                "phase": "Pending", "worker": null, "revision": null, "lastTransitionTime": now,
                "conditions": [{"type": "Placed", "status": "False", "reason": "PoolNotFound", "message": message,
                                "lastTransitionTime": now, "observedGeneration": a.metadata.generation}]
            }
        });
        let result = async {
            if labelled {
                let unlabel = json!({"metadata": {"labels": {labels::WORKER: null}}});
                api.patch(&a.name_any(), &merge_params(), &Patch::Merge(unlabel))
                    .await?;
            }
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
