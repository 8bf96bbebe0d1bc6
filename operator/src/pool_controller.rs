//! The pool controller: for each ActorPool, the worker Deployment of its revision, the placement
//! of its Actors on live workers, and the pool's status.
//!
//! Phases of one reconcile: build (pure: Deployment, placement), apply (server-side apply under
//! the operator's field manager), status (only when it changed).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{apps::v1::Deployment, coordination::v1::Lease},
    jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType},
    },
};
use serde_json::{Value, json};
use troupe_crds::{Actor, ActorPhase, ActorPool, PoolPhase, labels};

use crate::{
    analysis::Revision,
    context::{Context, MANAGER},
    deployment::{build_deployment, deployment_name},
    membership::{LiveWorker, live_workers},
    placement::{Step, WorkerSlot, apply_steps, merge_params, plan, worker_of, write::publish},
    revision::revision_of,
    revisions::{Workers, canary_actors, plan_workers},
    rollout::{Command, Observed, Rollout, advance, analysis_due, canary_steps},
};

/// Why a pool reconcile failed; each variant names the step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("applying the worker Deployment: {0}")]
    ApplyDeployment(#[source] kube::Error),
    #[error("retiring an old revision's Deployment: {0}")]
    RetireDeployment(#[source] kube::Error),
    #[error("writing the workers' ServiceAccount, RoleBinding or headless Service: {0}")]
    WorkerAccess(#[source] kube::Error),
    #[error("scaling an older revision's Deployment: {0}")]
    ScaleDeployment(#[source] kube::Error),
    #[error("writing the pool's annotations or template: {0}")]
    WriteSpec(#[source] kube::Error),
    #[error("writing actor {actor}: {source}")]
    WriteActor {
        actor: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading a worker's lease: {0}")]
    ReadLease(#[source] kube::Error),
    #[error("writing the pool status: {0}")]
    WriteStatus(#[source] kube::Error),
}

impl Error {
    pub fn step(&self) -> &'static str {
        match self {
            Error::ApplyDeployment(_) => "apply-deployment",
            Error::RetireDeployment(_) => "retire-deployment",
            Error::ScaleDeployment(_) => "scale-deployment",
            Error::WorkerAccess(_) => "worker-access",
            Error::WriteSpec(_) => "write-spec",
            Error::WriteActor { .. } => "write-actor",
            Error::WriteStatus(_) => "write-status",
            Error::ReadLease(_) => "read-lease",
        }
    }
}

/// Actor writes in flight at once during one pool reconcile.
pub const WRITES_IN_FLIGHT: usize = 32;

/// How often a pool is looked at even when nothing changed (lease expiry is a non-event).
pub const RESYNC: Duration = Duration::from_secs(2);

/// The command set by annotation on the pool, if any (promote wins over retry over abort only
/// if several are set at once, which kubectl users rarely do).
fn command_of(pool: &ActorPool) -> Option<(Command, &'static str)> {
    let a = pool.annotations();
    [
        (labels::ABORT, Command::Abort),
        (labels::PROMOTE, Command::Promote),
        (labels::RETRY, Command::Retry),
    ]
    .into_iter()
    .find(|(key, _)| a.contains_key(*key))
    .map(|(key, c)| (c, key))
}

/// An Event on the pool about `revision`: that revision's Deployment is the related object, so
/// that Events of one reason about different revisions are not folded into one series (which
/// would keep the first one's message).
async fn pool_event(
    ctx: &Context,
    pool: &ActorPool,
    revision: &str,
    warning: bool,
    reason: &str,
    note: String,
) {
    let type_ = if warning {
        EventType::Warning
    } else {
        EventType::Normal
    };
    let secondary = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some("Deployment".into()),
        name: Some(deployment_name(&pool.name_any(), revision)),
        namespace: pool.namespace(),
        ..Default::default()
    };
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Rollout".into(),
        secondary: Some(secondary),
    };
    publish(ctx, event, &pool.object_ref(&())).await;
}

/// `troupe.dev/undo`: the previous revision's template goes back into the spec.
async fn undo(ctx: &Context, pool: &ActorPool, ns: &str, previous: Option<&str>) -> Result<(), Error> {
    let api: Api<ActorPool> = Api::namespaced(ctx.client.clone(), ns);
    let name = pool.name_any();
    let template = previous.and_then(|rev| {
        ctx.deployments
            .state()
            .into_iter()
            .find(|d| {
                d.namespace().as_deref() == Some(ns)
                    && d.labels().get(labels::POOL) == Some(&name)
                    && d.labels().get(labels::REVISION).map(String::as_str) == Some(rev)
            })
            .and_then(|d| d.annotations().get(labels::TEMPLATE).cloned())
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    });
    let patch = match template {
        Some(t) => {
            pool_event(
                ctx,
                pool,
                previous.unwrap_or_default(),
                false,
                "Undone",
                format!("template of revision {} restored", previous.unwrap_or_default()),
            )
            .await;
            json!({"metadata": {"annotations": {labels::UNDO: null}}, "spec": {"template": t}})
        }
        None => {
            pool_event(
                ctx,
                pool,
                &revision_of(&pool.spec.template),
                true,
                "UndoImpossible",
                "no previous revision is kept (none, or its rollback window has passed)".into(),
            )
            .await;
            json!({"metadata": {"annotations": {labels::UNDO: null}}})
        }
    };
    api.patch(&name, &merge_params(), &Patch::Merge(patch))
        .await
        .map_err(Error::WriteSpec)?;
    Ok(())
}

/// The pool's live workers, judged on the operator's clock. A worker that looks gone while
/// actors are still labelled with it is read again straight from the API server before its
/// actors are failed over, so that a stalled or lagging Lease watch can never make live workers
/// look dead (and fail a whole pool over at once).
async fn observe_workers(
    ctx: &Context,
    ns: &str,
    pool: &str,
    actors: &[Arc<Actor>],
) -> Result<Vec<LiveWorker>, Error> {
    let now = Instant::now();
    let mut leases: BTreeMap<String, Arc<Lease>> = ctx
        .leases
        .state()
        .into_iter()
        .filter(|l| l.namespace().as_deref() == Some(ns))
        .map(|l| (l.name_any(), l))
        .collect();
    let live = live_workers(leases.values().map(|l| l.as_ref()), pool, &ctx.leases_seen, now);
    let live_names: BTreeSet<&str> = live.iter().map(|w| w.name.as_str()).collect();
    let suspects: BTreeSet<String> = actors
        .iter()
        .filter_map(|a| worker_of(a))
        .filter(|w| !live_names.contains(w.as_str()))
        .collect();
    if suspects.is_empty() {
        return Ok(live);
    }
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), ns);
    for worker in suspects {
        match api.get_opt(&worker).await.map_err(Error::ReadLease)? {
            Some(fresh) => {
                leases.insert(worker, Arc::new(fresh));
            }
            None => {
                leases.remove(&worker);
            }
        }
    }
    Ok(live_workers(
        leases.values().map(|l| l.as_ref()),
        pool,
        &ctx.leases_seen,
        Instant::now(),
    ))
}

/// Reconciles one pool: rollout, Deployments, placement, status.
pub async fn reconcile(pool: Arc<ActorPool>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let _timer = ctx.metrics.duration.with_label_values(&["pool"]).start_timer();
    ctx.metrics.reconciles.with_label_values(&["pool"]).inc();
    if ctx.metrics.queue_depth.get() > 0 {
        ctx.metrics.queue_depth.dec();
    }
    let ns = pool.namespace().unwrap_or_default();
    let name = pool.name_any();
    if pool.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // A replica that cannot prove its leadership (paused, cut off) writes nothing: another may
    // lead by now.
    if !ctx.leading() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let target = revision_of(&pool.spec.template);
    let now = Timestamp::now();
    // A pool we wrote whose cached copy is still the one we read then: deciding again from it
    // would repeat the last decision (a measurement counted twice, an Event sent twice).
    if ctx.is_stale(&pool) {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let status = pool.status.clone().unwrap_or_default();
    let current = Rollout::from_status(&status);

    if pool.annotations().contains_key(labels::UNDO) {
        // As `kubectl rollout undo`: back to the template before the spec's current one.
        let back_to = match current.stable.as_deref() {
            Some(stable) if stable != target => Some(stable),
            _ => current.previous.as_deref(),
        };
        undo(&ctx, &pool, &ns, back_to).await?;
        return Ok(Action::requeue(Duration::from_millis(200)));
    }

    // The pool's actors.
    let actors: Vec<Arc<Actor>> = ctx
        .actors
        .state()
        .into_iter()
        .filter(|a| {
            a.namespace().as_deref() == Some(&ns)
                && a.spec.pool == name
                && a.metadata.deletion_timestamp.is_none()
        })
        .collect();

    // Membership, on the operator's own clock.
    let live = observe_workers(&ctx, &ns, &name, &actors).await?;
    let live_names: BTreeSet<String> = live.iter().map(|w| w.name.clone()).collect();
    let revision_of_worker: BTreeMap<String, String> = live
        .iter()
        .map(|w| (w.name.clone(), w.revision.clone()))
        .collect();
    let workers_of = |rev: &str| live.iter().filter(|w| w.revision == rev).collect::<Vec<_>>();

    // Rollout: what was observed, then the state machine.
    let groups_now = Groups::of(&current, &target, &actors, &revision_of_worker);
    let settled = groups_now.settled(&actors, &revision_of_worker);
    let round = match analysis_due(&pool, &current, &target, workers_of(&target).len(), now) {
        Some(rev) => {
            let only = current_step_metrics(&pool, &current, &target);
            let judged_workers = workers_of(&rev);
            let stable = current.stable.clone().filter(|s| *s != rev);
            let stable_workers = stable.as_deref().map(&workers_of).unwrap_or_default();
            let baseline = stable.as_deref().map(|name| Revision {
                name,
                workers: &stable_workers,
            });
            let judged = Revision {
                name: &rev,
                workers: &judged_workers,
            };
            let round = ctx.analyzer.measure(&pool, judged, baseline, &only).await;
            for r in &round.results {
                ctx.metrics
                    .measurements
                    .with_label_values(&[&format!("{:?}", r.outcome)])
                    .inc();
            }
            Some(round)
        }
        None => None,
    };
    let alert = if pool.spec.rollback.as_ref().is_some_and(|r| r.on_alerts) {
        ctx.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(ns.clone(), name.clone()))
    } else {
        None
    };
    let command = command_of(&pool);
    let obs = Observed {
        target: &target,
        now,
        target_workers: workers_of(&target).len(),
        settled,
        round,
        command: command.map(|c| c.0),
        alert: alert.as_ref().map(|a| a.0.clone()),
    };
    let decision = advance(&pool, &current, &obs);
    let next = &decision.next;

    // The workers' identity, then their Deployments: the current template's revision applied
    // whole, others scaled or retired.
    // A failure here is reported (and retried) but does not hold up placement on live workers.
    let mut access_error = None;
    if !ctx.settings.worker_cluster_role.is_empty() {
        let accounts = ctx.serves_core("serviceaccounts").await;
        if let Err(e) = ctx
            .worker_access
            .ensure(&ctx.client, &pool, &ctx.settings.worker_cluster_role, accounts)
            .await
        {
            access_error = Some(Error::WorkerAccess(e));
        }
    }
    if ctx.serves_core("services").await
        && let Err(e) = ctx.services.ensure(&ctx.client, &pool).await
    {
        access_error.get_or_insert(Error::WorkerAccess(e));
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let owned: Vec<Arc<Deployment>> = ctx
        .deployments
        .state()
        .into_iter()
        .filter(|d| {
            d.namespace().as_deref() == Some(&ns)
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
    let worker_plan = plan_workers(&pool, next, &target, &existing, now);
    // A Deployment the API server refuses is reported (condition WorkersDeployed=False, with the
    // server's message) and retried, but placement goes on: failover never waits for it.
    let mut deploy_error: Option<Error> = None;
    for (rev, &want) in &worker_plan {
        let found = owned.iter().find(|d| rev_of(d) == *rev);
        match want {
            Workers::Apply(replicas) => {
                let mut deploy = build_deployment(&pool, &target, &ctx.settings);
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
                            &deployment_name(&name, &target),
                            &PatchParams::apply(MANAGER).force(),
                            &Patch::Apply(&deploy),
                        )
                        .await
                {
                    deploy_error.get_or_insert(Error::ApplyDeployment(e));
                }
            }
            Workers::Scale(replicas) => {
                let Some(d) = found else { continue };
                if d.spec.as_ref().and_then(|s| s.replicas) != Some(replicas) {
                    let patch = json!({"spec": {"replicas": replicas}});
                    if let Err(e) = deployments
                        .patch(&d.name_any(), &merge_params(), &Patch::Merge(patch))
                        .await
                    {
                        deploy_error.get_or_insert(Error::ScaleDeployment(e));
                    }
                }
            }
            Workers::Retire => {
                let Some(d) = found else { continue };
                let on_it = actors
                    .iter()
                    .any(|a| revision_of_worker.get(&worker_of(a).unwrap_or_default()) == Some(rev));
                if !on_it {
                    tracing::info!(pool = %name, deployment = %d.name_any(), "retiring an old revision");
                    match deployments
                        .delete(&d.name_any(), &DeleteParams::background())
                        .await
                    {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(e) => {
                            deploy_error.get_or_insert(Error::RetireDeployment(e));
                        }
                    }
                }
            }
        }
    }

    // Placement, by the new rollout state: each group on its revision's live workers.
    let groups = Groups::of(next, &target, &actors, &revision_of_worker);
    let capacity = pool.spec.actors_per_worker.max(1) as usize;
    let slots = |rev: &str| -> Vec<WorkerSlot> {
        live.iter()
            .filter(|w| w.revision == rev)
            .map(|w| WorkerSlot {
                name: w.name.clone(),
                capacity,
            })
            .collect()
    };
    let (canary_refs, stable_refs): (Vec<&Actor>, Vec<&Actor>) = actors
        .iter()
        .map(|a| a.as_ref())
        .partition(|a| groups.canary.contains(&a.name_any()));
    let mut steps = plan(&stable_refs, &live_names, &slots(&groups.stable_revision));
    if let Some(rev) = &groups.canary_revision {
        steps.extend(plan(&canary_refs, &live_names, &slots(rev)));
    }
    let unplaced = steps
        .iter()
        .filter(|s| matches!(s, Step::Unplaceable { .. }))
        .count();
    let placed = steps
        .iter()
        .filter(|s| matches!(s, Step::Assign { failover: false, .. }))
        .count();
    if !ctx.leading() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let (first_error, conflicts) = apply_steps(&ctx, &ns, &name, &actors, steps, &revision_of_worker).await;
    if placed > 0 {
        let note = format!("placed {placed} actors on live workers (each Actor's status names its worker)");
        pool_event(&ctx, &pool, &target, false, "Placed", note).await;
    }

    // Status.
    let mut by_phase: BTreeMap<String, i32> = BTreeMap::new();
    for a in &actors {
        let phase = a
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(ActorPhase::Pending);
        *by_phase.entry(format!("{phase:?}")).or_default() += 1;
    }
    let ready_replicas: i32 = owned
        .iter()
        .map(|d| d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0))
        .sum();
    let desired_workers: i32 = worker_plan
        .values()
        .map(|w| match w {
            Workers::Apply(n) | Workers::Scale(n) => *n,
            Workers::Retire => 0,
        })
        .sum();
    let ready_workers = live.len() as i32;
    let stable_live = workers_of(next.stable.as_deref().unwrap_or(&target)).len() as i32;
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
    let deployed = match &deploy_error {
        None => (
            true,
            "Deployed",
            "every revision's Deployment is as planned".to_string(),
        ),
        Some(e) => (false, "DeploymentRejected", e.to_string()),
    };
    let newly_rejected = deploy_error.is_some()
        && !status.conditions.iter().any(|c| {
            c.type_ == "WorkersDeployed" && c.reason == "DeploymentRejected" && c.message == deployed.2
        });
    if newly_rejected {
        pool_event(
            &ctx,
            &pool,
            &target,
            true,
            "DeploymentRejected",
            deployed.2.clone(),
        )
        .await;
    }
    let cond =
        |type_: &str, ok: bool, reason: &str, message: &str, prev: &[troupe_crds::common::Condition]| {
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
        "replicas": ready_replicas,
        "desiredWorkers": desired_workers,
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
    let mut now_json = serde_json::to_value(&status).unwrap_or_default();
    strip_nulls(&mut now_json);
    if desired != now_json {
        let patch = json!({"apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool", "status": desired});
        let after = Api::<ActorPool>::namespaced(ctx.client.clone(), &ns)
            .patch_status(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(patch))
            .await
            .map_err(Error::WriteStatus)?;
        ctx.wrote(&pool, &after);
    }

    // What the decision means to people and to metrics, once it is recorded.
    if let Some((kind, detect)) = decision.aborted {
        let kind = format!("{kind:?}").to_lowercase();
        ctx.metrics.rollbacks.with_label_values(&[&kind]).inc();
        if let Some(s) = detect {
            ctx.metrics.time_to_detect.with_label_values(&[&kind]).observe(s);
        }
        if let Some((_, received)) = &alert {
            ctx.metrics
                .alert_to_decision
                .observe(received.elapsed().as_secs_f64());
        }
    }
    if let Some(s) = decision.rollback_completed {
        let kind = next
            .abort
            .as_ref()
            .map(|a| format!("{:?}", a.kind).to_lowercase())
            .unwrap_or_default();
        ctx.metrics
            .time_to_rollback
            .with_label_values(&[&kind])
            .observe(s);
        let aborted = next
            .abort
            .as_ref()
            .map(|a| a.revision.clone())
            .unwrap_or_default();
        pool_event(
            &ctx,
            &pool,
            &aborted,
            true,
            "RollbackComplete",
            format!(
                "every actor left revision {aborted} and is back on {} after {s:.1}s",
                next.stable.clone().unwrap_or_default()
            ),
        )
        .await;
    }
    if decision.promoted {
        ctx.metrics.promotions.inc();
    }
    for n in &decision.notes {
        pool_event(&ctx, &pool, &target, n.warning, n.reason, n.message.clone()).await;
    }
    if let Some((_, key)) = command
        && decision.command_done
    {
        let patch = json!({"metadata": {"annotations": {key: null}}});
        let after = Api::<ActorPool>::namespaced(ctx.client.clone(), &ns)
            .patch(&name, &merge_params(), &Patch::Merge(patch))
            .await
            .map_err(Error::WriteSpec)?;
        ctx.wrote(&pool, &after);
    }
    tracing::debug!(pool = %name, took = ?started.elapsed(), "pool reconciled");
    match first_error.or(deploy_error).or(access_error) {
        Some(e) => Err(e),
        // Actors that changed under the decision are decided again from a fresh copy, soon.
        None if conflicts > 0 => Ok(Action::requeue(Duration::from_millis(200))),
        None => Ok(Action::requeue(RESYNC)),
    }
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

/// The metric names an analysis step in progress restricts measurements to.
fn current_step_metrics(pool: &ActorPool, r: &Rollout, target: &str) -> Vec<String> {
    if !r.in_progress(target) {
        return Vec::new();
    }
    r.step
        .and_then(|i| canary_steps(pool).get(i as usize).cloned())
        .and_then(|s| s.analysis)
        .map(|a| a.metrics)
        .unwrap_or_default()
}

/// Which actors go to the canary revision and which stay on stable.
struct Groups {
    stable_revision: String,
    canary_revision: Option<String>,
    canary: BTreeSet<String>,
}

impl Groups {
    fn of(
        r: &Rollout,
        target: &str,
        actors: &[Arc<Actor>],
        revision_of_worker: &BTreeMap<String, String>,
    ) -> Self {
        let stable_revision = r.stable.clone().unwrap_or_else(|| target.to_string());
        let canary_revision = r.canary.clone().filter(|c| *c != stable_revision);
        let canary = match &canary_revision {
            Some(rev) => {
                let candidates: Vec<(String, bool)> = actors
                    .iter()
                    .map(|a| {
                        let on = worker_of(a).and_then(|w| revision_of_worker.get(&w).cloned());
                        (a.name_any(), on.as_deref() == Some(rev))
                    })
                    .collect();
                canary_actors(&candidates, r.weight.unwrap_or(0))
            }
            None => BTreeSet::new(),
        };
        Self {
            stable_revision,
            canary_revision,
            canary,
        }
    }

    /// Every actor is on a live worker of its group's revision.
    fn settled(&self, actors: &[Arc<Actor>], revision_of_worker: &BTreeMap<String, String>) -> bool {
        actors.iter().all(|a| {
            let want = if self.canary.contains(&a.name_any()) {
                self.canary_revision.as_deref()
            } else {
                Some(self.stable_revision.as_str())
            };
            let on = worker_of(a).and_then(|w| revision_of_worker.get(&w).cloned());
            on.is_some() && on.as_deref() == want
        })
    }
}

/// Logs and counts a failed reconcile and retries soon.
pub fn error_policy(pool: Arc<ActorPool>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(pool = %pool.name_any(), namespace = ?pool.namespace(), %error, "pool reconcile failed");
    ctx.metrics
        .errors
        .with_label_values(&["pool", error.step()])
        .inc();
    Action::requeue(Duration::from_secs(2))
}
