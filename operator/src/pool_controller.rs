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

use futures::StreamExt;
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
    membership::live_workers,
    placement::{WorkerSlot, place},
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
        }
    }
}

/// Actor writes in flight at once during one pool reconcile.
pub const WRITES_IN_FLIGHT: usize = 32;

/// How often a pool is looked at even when nothing changed (lease expiry is a non-event).
pub const RESYNC: Duration = Duration::from_secs(2);

/// Whether the actor already says it is Pending with condition Placed=False for `reason`.
pub fn pending_because(a: &Actor, reason: &str) -> bool {
    a.status.as_ref().is_some_and(|s| {
        s.phase == Some(ActorPhase::Pending)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Placed" && c.reason == reason)
    })
}

/// Placed by hand (`troupe.dev/placement: manual`): the operator does not move it.
pub fn is_manual(a: &Actor) -> bool {
    a.annotations().get(labels::PLACEMENT).map(String::as_str) == Some("manual")
}

fn worker_of(a: &Actor) -> Option<String> {
    a.labels().get(labels::WORKER).cloned()
}

/// Parameters of a JSON merge patch under the operator's field manager (label removal: a merge
/// patch removes a label whoever set it, where an apply only drops what the operator owns).
pub fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// One move the placement asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Label the actor with its worker (it has none).
    Assign {
        actor: String,
        worker: String,
        failover: bool,
    },
    /// Take the actor from a live worker; it is assigned once that worker confirmed the stop.
    Release { actor: String, from: String },
    /// Take the actor from a dead worker (its lease ended): nothing runs it any more.
    Orphan { actor: String, from: String },
    /// No live worker has room.
    Unplaceable { actor: String },
}

/// Decides the steps that bring the pool's actors toward a placement on `live` workers.
///
/// Never two activations: an actor leaves a live worker in two steps (release, then assign once
/// the old worker confirmed with phase Migrating), and leaves a dead worker only once its lease
/// has ended.
pub fn plan(actors: &[&Actor], live: &BTreeSet<String>, eligible: &[WorkerSlot]) -> Vec<Step> {
    // An actor counts as on its worker while labelled; a released actor not yet confirmed
    // stays "in transit" and is left alone.
    let mut current: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut in_transit = BTreeSet::new();
    let mut lost_in_transit = BTreeSet::new();
    let mut steps = Vec::new();
    for a in actors {
        let name = a.name_any();
        match worker_of(a) {
            Some(w) if live.contains(&w) => {
                current.insert(name, Some(w));
            }
            Some(w) => {
                steps.push(Step::Orphan {
                    actor: name.clone(),
                    from: w,
                });
                current.insert(name, None);
            }
            None => {
                let status = a.status.as_ref();
                let previous = status.and_then(|s| s.worker.clone());
                let confirmed = status.and_then(|s| s.phase) == Some(ActorPhase::Migrating);
                match previous {
                    Some(p) if live.contains(&p) && !confirmed => {
                        in_transit.insert(name.clone());
                    }
                    // Released from a worker that died before confirming: a failover.
                    Some(_) if !confirmed => {
                        lost_in_transit.insert(name.clone());
                    }
                    _ => {}
                }
                // Counted as homeless either way, so the placement reserves a worker for it and
                // does not release more actors to fill that worker.
                current.insert(name, None);
            }
        }
    }
    let placement = place(&current, eligible);
    let orphaned: BTreeSet<String> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Orphan { actor, .. } => Some(actor.clone()),
            _ => None,
        })
        .collect();
    for (actor, target) in placement {
        let now = current.get(&actor).cloned().flatten();
        match (now, target) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(_)) => steps.push(Step::Release { actor, from: a }),
            (Some(a), None) => steps.push(Step::Release { actor, from: a }),
            // Released but its old worker has not confirmed the stop yet: assigned next time.
            (None, Some(_)) if in_transit.contains(&actor) => {}
            (None, Some(b)) => {
                let failover = orphaned.contains(&actor) || lost_in_transit.contains(&actor);
                steps.push(Step::Assign {
                    actor,
                    worker: b,
                    failover,
                });
            }
            (None, None) if in_transit.contains(&actor) => {}
            (None, None) => steps.push(Step::Unplaceable { actor }),
        }
    }
    steps
}

/// One actor's steps with what the last one overwrites dropped: an orphan assigned in the same
/// pass needs no separate "worker lost" write (the assignment rewrites status and label, and the
/// dead worker's lease has ended), which halves the writes of a failover.
pub fn coalesce(mut steps: Vec<Step>) -> Vec<Step> {
    if let [Step::Orphan { .. }, Step::Assign { .. }] = steps.as_slice() {
        steps.remove(0);
    }
    steps
}

fn actor_status_patch(
    phase: ActorPhase,
    worker: Option<&str>,
    revision: Option<&str>,
    placed: (bool, &str, &str),
    generation: Option<i64>,
) -> Value {
    let now = Timestamp::now();
    json!({
        "apiVersion": "troupe.dev/v1alpha1",
        "kind": "Actor",
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
    })
}

/// Publishes an Event; a failure is logged, never fatal (Events are best effort).
async fn publish(ctx: &Context, event: Event, regarding: &k8s_openapi::api::core::v1::ObjectReference) {
    if let Err(e) = ctx.recorder.publish(&event, regarding).await {
        tracing::debug!(error = %e, "publishing an event failed");
    }
}

async fn event(ctx: &Context, actor: &Actor, type_: EventType, reason: &str, action: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    publish(ctx, event, &actor.object_ref(&())).await;
}

async fn apply_step(
    ctx: &Context,
    ns: &str,
    pool: &str,
    revision_of_worker: &BTreeMap<String, String>,
    actor: &Actor,
    step: &Step,
) -> Result<(), Error> {
    let api: Api<Actor> = Api::namespaced(ctx.client.clone(), ns);
    let name = actor.name_any();
    let wrap = |source| Error::WriteActor {
        actor: format!("{ns}/{name}"),
        source,
    };
    let generation = actor.metadata.generation;
    // Placement writes are a status apply, then the worker label (order matters, see Release).
    let write = |phase: ActorPhase,
                 worker: Option<&str>,
                 revision: Option<&str>,
                 placed: (bool, &str, &str),
                 label: Option<&str>| {
        let status = actor_status_patch(phase, worker, revision, placed, generation);
        let label = json!({"metadata": {"labels": {labels::WORKER: label}}});
        let (api, name) = (&api, &name);
        async move {
            api.patch_status(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(status))
                .await?;
            api.patch(name, &merge_params(), &Patch::Merge(label)).await
        }
    };
    match step {
        Step::Assign { worker, failover, .. } => {
            let revision = revision_of_worker.get(worker).map(String::as_str);
            let message = format!("placed on worker {worker}");
            // A new actor (no status yet) gets only its label: its worker writes where it runs
            // when it starts it. One write instead of two is what keeps 1,000 new actors within
            // seconds (docs/benchmarks.md). An actor with a past (Pending, moved, orphaned) gets
            // its status rewritten too, so that no stale reason outlives the placement.
            if actor.status.is_none() {
                let label = json!({"metadata": {"labels": {labels::WORKER: worker}}});
                api.patch(&name, &merge_params(), &Patch::Merge(label))
                    .await
                    .map_err(wrap)?;
                ctx.metrics.placements.inc();
                return Ok(());
            }
            write(
                ActorPhase::Placed,
                Some(worker),
                revision,
                (true, "Placed", &message),
                Some(worker),
            )
            .await
            .map_err(wrap)?;
            ctx.metrics.placements.inc();
            if *failover {
                ctx.metrics.failovers.inc();
                let note = format!("its worker's lease ended; {message}");
                event(ctx, actor, EventType::Warning, "FailedOver", "Place", note).await;
            }
            // A plain placement gets no Event of its own (its Placed condition says it): one
            // Event per actor would be a quarter of all writes when thousands are placed. The
            // pool gets one summary Event per reconcile instead.
        }
        Step::Release { from, .. } => {
            // Status first, label second: the old worker's confirmation (phase Migrating) can
            // then only come after this write. Pending, not Migrating: Migrating is the old
            // worker's word that it stopped the actor.
            let message = format!("moving off worker {from} (pool {pool} rebalanced or rolled)");
            write(
                ActorPhase::Pending,
                Some(from),
                None,
                (false, "Moving", &message),
                None,
            )
            .await
            .map_err(wrap)?;
            ctx.metrics.moves.inc();
            event(ctx, actor, EventType::Normal, "Moving", "Move", message).await;
        }
        Step::Orphan { from, .. } => {
            let message = format!("worker {from} is gone (its lease ended); waiting for a live worker");
            write(
                ActorPhase::Pending,
                None,
                None,
                (false, "WorkerLost", &message),
                None,
            )
            .await
            .map_err(wrap)?;
        }
        Step::Unplaceable { .. } => {
            if !pending_because(actor, "NoWorker") {
                let message = format!(
                    "no live worker of pool {pool} has room (workers starting, scaled to zero, or at actorsPerWorker capacity)"
                );
                // Not placed: no label to keep or set.
                write(
                    ActorPhase::Pending,
                    None,
                    None,
                    (false, "NoWorker", &message),
                    None,
                )
                .await
                .map_err(wrap)?;
                event(ctx, actor, EventType::Warning, "NoWorker", "Place", message).await;
            }
        }
    }
    Ok(())
}

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

    // Membership.
    let leases: Vec<Arc<Lease>> = ctx
        .leases
        .state()
        .into_iter()
        .filter(|l| l.namespace().as_deref() == Some(&ns))
        .collect();
    let live = live_workers(leases.iter().map(|l| l.as_ref()), &name, now);
    let live_names: BTreeSet<String> = live.iter().map(|w| w.name.clone()).collect();
    let revision_of_worker: BTreeMap<String, String> = live
        .iter()
        .map(|w| (w.name.clone(), w.revision.clone()))
        .collect();
    let workers_of = |rev: &str| live.iter().filter(|w| w.revision == rev).collect::<Vec<_>>();

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
                if !unchanged {
                    deployments
                        .patch(
                            &deployment_name(&name, &target),
                            &PatchParams::apply(MANAGER).force(),
                            &Patch::Apply(&deploy),
                        )
                        .await
                        .map_err(Error::ApplyDeployment)?;
                }
            }
            Workers::Scale(replicas) => {
                let Some(d) = found else { continue };
                if d.spec.as_ref().and_then(|s| s.replicas) != Some(replicas) {
                    let patch = json!({"spec": {"replicas": replicas}});
                    deployments
                        .patch(&d.name_any(), &merge_params(), &Patch::Merge(patch))
                        .await
                        .map_err(Error::ScaleDeployment)?;
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
                        Err(e) => return Err(Error::RetireDeployment(e)),
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
    let first_error = apply_steps(&ctx, &ns, &name, &actors, steps, &revision_of_worker).await;
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
    match first_error.or(access_error) {
        Some(e) => Err(e),
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

/// Applies placement steps: each actor's steps in order (an orphan is unlabelled before it is
/// assigned), actors in parallel, a bounded number of writes in flight. Returns the first error.
async fn apply_steps(
    ctx: &Arc<Context>,
    ns: &str,
    pool: &str,
    actors: &[Arc<Actor>],
    steps: Vec<Step>,
    revision_of_worker: &BTreeMap<String, String>,
) -> Option<Error> {
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
    let results: Vec<Result<(), Error>> = futures::stream::iter(per_actor)
        .map(|(actor, steps)| {
            let (ctx, ns, pool, revisions) =
                (ctx.clone(), ns.to_string(), pool.to_string(), revisions.clone());
            async move {
                for step in &steps {
                    apply_step(&ctx, &ns, &pool, &revisions, &actor, step).await?;
                }
                Ok(())
            }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    let mut first_error = None;
    for e in results.into_iter().filter_map(Result::err) {
        tracing::warn!(%pool, error = %e, "placement step failed");
        first_error.get_or_insert(e);
    }
    first_error
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

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(name: &str, worker: Option<&str>, status: Value) -> Actor {
        let mut a: Actor = serde_json::from_value(json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "Actor",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"pool": "p", "behavior": "echo"},
            "status": status
        }))
        .unwrap();
        if let Some(w) = worker {
            a.metadata.labels = Some([(labels::WORKER.to_string(), w.to_string())].into());
        }
        a
    }

    fn slots(names: &[&str]) -> Vec<WorkerSlot> {
        names
            .iter()
            .map(|n| WorkerSlot {
                name: n.to_string(),
                capacity: 100,
            })
            .collect()
    }

    fn live(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn new_actors_are_assigned_to_live_workers() {
        let a = actor("a", None, json!({}));
        let steps = plan(&[&a], &live(&["w1"]), &slots(&["w1"]));
        assert_eq!(
            steps,
            vec![Step::Assign {
                actor: "a".into(),
                worker: "w1".into(),
                failover: false
            }]
        );
    }

    #[test]
    fn actors_of_a_dead_worker_are_orphaned_and_failed_over_in_one_pass() {
        let a = actor("a", Some("dead"), json!({"worker": "dead", "phase": "Running"}));
        let steps = plan(&[&a], &live(&["w1"]), &slots(&["w1"]));
        assert_eq!(
            steps,
            vec![
                Step::Orphan {
                    actor: "a".into(),
                    from: "dead".into()
                },
                Step::Assign {
                    actor: "a".into(),
                    worker: "w1".into(),
                    failover: true
                }
            ]
        );
    }

    #[test]
    fn an_orphan_assigned_in_the_same_pass_costs_only_the_assignment() {
        let a = actor("a", Some("dead"), json!({"worker": "dead", "phase": "Running"}));
        let steps = coalesce(plan(&[&a], &live(&["w1"]), &slots(&["w1"])));
        assert_eq!(
            steps,
            vec![Step::Assign {
                actor: "a".into(),
                worker: "w1".into(),
                failover: true
            }]
        );
        // Without room elsewhere the orphan is still taken off its dead worker.
        let steps = coalesce(plan(&[&a], &live(&[]), &[]));
        assert!(matches!(steps[0], Step::Orphan { .. }));
    }

    #[test]
    fn a_move_between_live_workers_waits_for_the_old_worker_to_confirm() {
        // Two actors on w1, w2 joins: one must move, and first it is only released.
        let a = actor("a", Some("w1"), json!({"worker": "w1", "phase": "Running"}));
        let b = actor("b", Some("w1"), json!({"worker": "w1", "phase": "Running"}));
        let steps = plan(&[&a, &b], &live(&["w1", "w2"]), &slots(&["w1", "w2"]));
        assert_eq!(
            steps,
            vec![Step::Release {
                actor: "b".into(),
                from: "w1".into()
            }]
        );
        // Released, not yet confirmed: left alone.
        let b = actor("b", None, json!({"worker": "w1", "phase": "Migrating"}));
        let b_waiting = actor("b", None, json!({"worker": "w1", "phase": "Pending"}));
        assert_eq!(
            plan(&[&a, &b_waiting], &live(&["w1", "w2"]), &slots(&["w1", "w2"])),
            vec![]
        );
        // Confirmed (the old worker wrote Migrating): assigned to the new worker.
        let steps = plan(&[&a, &b], &live(&["w1", "w2"]), &slots(&["w1", "w2"]));
        assert_eq!(
            steps,
            vec![Step::Assign {
                actor: "b".into(),
                worker: "w2".into(),
                failover: false
            }]
        );
    }

    #[test]
    fn actors_in_transit_reserve_their_place_so_no_extra_actor_is_released() {
        // 4 on w1 and 4 on w2, w3 joined; two were released from each and are not confirmed yet.
        let mut all = Vec::new();
        for i in 0..4 {
            all.push(actor(
                &format!("a{i}"),
                Some("w1"),
                json!({"worker": "w1", "phase": "Running"}),
            ));
            all.push(actor(
                &format!("b{i}"),
                Some("w2"),
                json!({"worker": "w2", "phase": "Running"}),
            ));
        }
        for (n, w) in [("a8", "w1"), ("a9", "w1"), ("b8", "w2"), ("b9", "w2")] {
            all.push(actor(n, None, json!({"worker": w, "phase": "Pending"})));
        }
        let refs: Vec<&Actor> = all.iter().collect();
        assert!(plan(&refs, &live(&["w1", "w2", "w3"]), &slots(&["w1", "w2", "w3"])).is_empty());
    }

    #[test]
    fn an_actor_released_by_a_worker_that_then_died_is_failed_over() {
        let a = actor("a", None, json!({"worker": "dead", "phase": "Pending"}));
        let steps = plan(&[&a], &live(&["w1"]), &slots(&["w1"]));
        assert_eq!(
            steps,
            vec![Step::Assign {
                actor: "a".into(),
                worker: "w1".into(),
                failover: true
            }]
        );
    }

    #[test]
    fn without_workers_actors_are_unplaceable_not_lost() {
        let a = actor("a", None, json!({}));
        assert_eq!(
            plan(&[&a], &live(&[]), &[]),
            vec![Step::Unplaceable { actor: "a".into() }]
        );
    }

    #[test]
    fn a_settled_pool_needs_no_step() {
        let a = actor("a", Some("w1"), json!({"worker": "w1", "phase": "Running"}));
        let b = actor("b", Some("w2"), json!({"worker": "w2", "phase": "Running"}));
        assert!(plan(&[&a, &b], &live(&["w1", "w2"]), &slots(&["w1", "w2"])).is_empty());
    }
}
