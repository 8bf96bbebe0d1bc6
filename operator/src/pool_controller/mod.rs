//! The pool controller: for each ActorPool, its workers' Deployments, the placement of its
//! Actors on live workers, its rollout, and its status.
//!
//! One reconcile reads as its phases: observe (one snapshot of the pool's actors and live
//! workers, `observe.rs`; analysis rounds run beside it, `measure.rs`) → decide (the rollout state machine, `crate::rollout`, pure) → act
//! (workers' identity and Deployments, `workers.rs`; placement, `place.rs`; one status write,
//! `status.rs`; Events and metrics of the decision and command annotations, `commands.rs`).

mod commands;
mod deletion_cost;
pub mod failures;
pub mod measure;
mod observe;
mod place;
mod status;
#[cfg(test)]
mod tests;
mod workers;

use std::{sync::Arc, time::Duration};

use kube::{ResourceExt, runtime::controller::Action};
use troupe_crds::ActorPool;

use crate::{
    context::Context,
    revision::revision_of,
    rollout::{Observed, Rollout, advance},
};
use commands::{announce, clear_command, command_of, last_command, undo_if_asked};
use observe::{Groups, Snapshot, forget_alert, peek_alert};

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

/// Reconciles one pool: observe, decide, act.
pub async fn reconcile(pool: Arc<ActorPool>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let _timer = ctx.metrics.duration.with_label_values(&["pool"]).start_timer();
    ctx.metrics.reconciles.with_label_values(&["pool"]).inc();
    if let Some(wait) = not_now(&ctx, &pool) {
        return Ok(wait);
    }
    let target = revision_of(&pool.spec.template);
    let status = pool.status.clone().unwrap_or_default();
    let current = Rollout::from_status(&status);
    if undo_if_asked(&ctx, &pool, &current, &target).await? {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }

    // Observe.
    let snap = Snapshot::observe(&ctx, &pool, &target, k8s_openapi::jiff::Timestamp::now()).await?;
    let observed = started.elapsed();
    let round = measure::measure(&ctx, &pool, &snap, &current);
    let alert = peek_alert(&ctx, &pool, &snap);
    let command = command_of(&pool);

    // Decide.
    let obs = Observed {
        target: &target,
        now: snap.now,
        target_workers: snap.workers_of(&target).len(),
        settled: Groups::of(&current, &snap).settled(&snap),
        round,
        // A command acted on already (its removal did not land) is not acted on twice.
        command: command.as_ref().filter(|g| !g.handled).map(|g| g.command),
        alert: alert.as_ref().map(|a| a.0.clone()),
    };
    let decision = advance(&pool, &current, &obs);

    // Act.
    let access_error = workers::ensure_worker_access(&ctx, &pool).await;
    let deployed = workers::apply_workers(&ctx, &pool, &snap, &decision.next).await;
    let workers_done = started.elapsed();
    if !ctx.leading() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let placed = place::place_actors(&ctx, &pool, &snap, &decision.next, &deployed.plan).await;
    failures::tell_failures(&ctx, &snap).await;
    let placed_done = started.elapsed();
    let acted_on = command.as_ref().is_some_and(|g| !g.handled) && decision.command_done;
    let last_command = last_command(&pool, command.as_ref(), acted_on);
    let outcome = status::Outcome {
        snap: &snap,
        decision: &decision,
        workers: &deployed,
        placed: &placed,
        last_command,
    };
    let desired = status::desired_status(&pool, &status, outcome);
    let version = status::write_status(&ctx, &pool, &status, desired, &target).await?;
    if let Some(a) = &alert {
        forget_alert(&ctx, &snap, a);
    }
    announce(&ctx, &pool, &target, &decision, alert.as_ref()).await;
    if let Some(g) = command
        && (acted_on || g.handled)
    {
        clear_command(&ctx, &pool, g.key, version.as_deref()).await?;
    }
    tracing::debug!(
        pool = %snap.name,
        took = ?started.elapsed(),
        ?observed,
        ?workers_done,
        ?placed_done,
        placed = placed.placed,
        "pool reconciled"
    );
    match placed.error.or(deployed.error).or(access_error) {
        Some(e) => Err(e),
        // Actors that changed under the decision are decided again from a fresh copy, soon.
        None if placed.conflicts > 0 => Ok(Action::requeue(Duration::from_millis(200))),
        // A lease running out is no event: looked at again when the first one would (a failover
        // starts then, not up to RESYNC later), or after RESYNC.
        None => Ok(Action::requeue(next_look(snap.next_lapse()))),
    }
}

/// When a pool is looked at again, given when its first live worker would lapse.
fn next_look(next_lapse: Option<Duration>) -> Duration {
    next_lapse.map_or(RESYNC, |lapse| (lapse + Duration::from_millis(20)).min(RESYNC))
}

/// Why this replica must not reconcile `pool` now, as the wait that follows.
fn not_now(ctx: &Context, pool: &ActorPool) -> Option<Action> {
    if ctx.metrics.queue_depth.get() > 0 {
        ctx.metrics.queue_depth.dec();
    }
    if pool.metadata.deletion_timestamp.is_some() {
        return Some(Action::await_change());
    }
    // A replica that cannot prove its leadership (paused, cut off) writes nothing: another may
    // lead by now.
    if !ctx.leading() {
        return Some(Action::requeue(Duration::from_secs(1)));
    }
    // A pool we wrote whose cached copy is still the one we read then: deciding again from it
    // would repeat the last decision (a measurement counted twice, an Event sent twice).
    if ctx.is_stale(pool) {
        return Some(Action::requeue(Duration::from_millis(200)));
    }
    None
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
