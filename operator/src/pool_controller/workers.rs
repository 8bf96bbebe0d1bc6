//! Act on workers: their identity (ServiceAccount, RoleBinding, headless Service) and each
//! revision's Deployment — the current template's applied whole, older ones scaled or retired.
//! A failure here is reported and retried, but never holds up placement on live workers. A
//! scale-down first marks which workers should go (`deletion_cost`).

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::json;
use troupe_crds::{ActorPool, labels};

use super::{Error, deletion_cost::mark_for_scale_in, observe::Snapshot};
use crate::{
    context::{Context, MANAGER},
    deployment::{Refusal, build_deployment, deployment_name, template_refusal},
    placement::{merge_params, worker_of},
    revisions::{Workers, plan_workers},
    rollout::Rollout,
};

/// The pool's Deployments after this reconcile's writes.
pub(super) struct WorkersApplied {
    /// The Deployments the pool owns, as cached before the writes.
    pub owned: Vec<Arc<Deployment>>,
    /// Replicas per revision, as planned.
    pub plan: BTreeMap<String, Workers>,
    /// The first Deployment write the API server refused.
    pub error: Option<Error>,
    /// Why the current template is not deployed at all (see `deployment::template_refusal`).
    pub refused: Option<Refusal>,
}

impl WorkersApplied {
    /// Workers the plan asks for, over every revision.
    pub fn desired(&self) -> i32 {
        self.plan.values().map(|w| w.replicas()).sum()
    }

    /// Ready replicas over the pool's Deployments.
    pub fn ready(&self) -> i32 {
        self.owned
            .iter()
            .map(|d| d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0))
            .sum()
    }
}

/// The workers' ServiceAccount and RoleBinding, and the headless Service when asked for.
pub(super) async fn ensure_worker_access(ctx: &Context, pool: &ActorPool) -> Option<Error> {
    let mut access_error = None;
    if !ctx.settings.worker_cluster_role.is_empty() {
        let accounts = ctx.serves_core("serviceaccounts").await;
        if let Err(e) = ctx
            .worker_access
            .ensure(&ctx.client, pool, &ctx.settings.worker_cluster_role, accounts)
            .await
        {
            access_error = Some(Error::WorkerAccess(e));
        }
    }
    if ctx.serves_core("services").await
        && let Err(e) = ctx.services.ensure(&ctx.client, pool).await
    {
        access_error.get_or_insert(Error::WorkerAccess(e));
    }
    access_error
}

/// Brings each revision's Deployment to the plan for rollout state `next`.
pub(super) async fn apply_workers(
    ctx: &Context,
    pool: &ActorPool,
    snap: &Snapshot,
    next: &Rollout,
) -> WorkersApplied {
    let (ns, name, target) = (&snap.ns, &snap.name, &snap.target);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let owned: Vec<Arc<Deployment>> = ctx
        .deployments
        .state()
        .into_iter()
        .filter(|d| {
            d.namespace().as_deref() == Some(ns.as_str())
                && d.owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == pool.uid().as_ref())
        })
        .collect();
    let rev_of = |d: &Deployment| d.labels().get(labels::REVISION).cloned().unwrap_or_default();
    let existing: BTreeMap<String, i32> = owned
        .iter()
        .map(|d| (rev_of(d), d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)))
        .collect();
    let plan = plan_workers(pool, next, target, &existing, snap.now);
    let mut error: Option<Error> = None;
    let refused = template_refusal(pool, &ctx.settings);
    for (rev, &want) in &plan {
        let found = owned.iter().find(|d| rev_of(d) == *rev);
        let scales_down = |to: i32| existing.get(rev).is_some_and(|&now| to < now);
        match want {
            // Not deployed, and not retried as an error: it waits for a template change.
            Workers::Apply(_) if refused.is_some() => {}
            Workers::Apply(replicas) => {
                if scales_down(replicas) {
                    mark_for_scale_in(ctx, snap, rev).await;
                }
                let mut deploy = build_deployment(pool, target, &ctx.settings);
                if let Some(spec) = deploy.spec.as_mut() {
                    spec.replicas = Some(replicas);
                }
                let unchanged = found.is_some_and(|d| {
                    d.spec == deploy.spec
                        && d.metadata.owner_references == deploy.metadata.owner_references
                        && d.annotations().get(labels::TEMPLATE)
                            == deploy
                                .metadata
                                .annotations
                                .as_ref()
                                .and_then(|a| a.get(labels::TEMPLATE))
                });
                if !unchanged
                    && let Err(e) = deployments
                        .patch(
                            &deployment_name(name, target),
                            &PatchParams::apply(MANAGER).force(),
                            &Patch::Apply(&deploy),
                        )
                        .await
                {
                    error.get_or_insert(Error::ApplyDeployment(e));
                }
            }
            Workers::Scale(replicas) => {
                let Some(d) = found else { continue };
                if scales_down(replicas) {
                    mark_for_scale_in(ctx, snap, rev).await;
                }
                if d.spec.as_ref().and_then(|s| s.replicas) != Some(replicas) {
                    let patch = json!({"spec": {"replicas": replicas}});
                    if let Err(e) = deployments
                        .patch(&d.name_any(), &merge_params(), &Patch::Merge(patch))
                        .await
                    {
                        error.get_or_insert(Error::ScaleDeployment(e));
                    }
                }
            }
            Workers::Retire => {
                let Some(d) = found else { continue };
                let on_it = snap
                    .actors
                    .iter()
                    .any(|a| snap.revision_of_worker.get(&worker_of(a).unwrap_or_default()) == Some(rev));
                if !on_it {
                    tracing::info!(pool = %name, deployment = %d.name_any(), "retiring an old revision");
                    match deployments
                        .delete(&d.name_any(), &DeleteParams::background())
                        .await
                    {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(e) => {
                            error.get_or_insert(Error::RetireDeployment(e));
                        }
                    }
                }
            }
        }
    }
    WorkersApplied {
        owned,
        plan,
        error,
        refused,
    }
}
