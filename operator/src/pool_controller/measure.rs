//! Analysis off the placement path. A round of measurements that is due runs in a task of its
//! own, within a time budget; the reconcile that started it goes on placing actors, and the one
//! that finds it done (the task asks for it) feeds it to the rollout's decision. An unreachable
//! Prometheus therefore slows a rollout's judgement, never a failover.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use kube::{ResourceExt, runtime::reflector::ObjectRef};
use troupe_crds::{ActorPool, MeasurementOutcome, MetricResult};

use super::observe::Snapshot;
use crate::{
    analysis::{Revision, threshold_of},
    context::Context,
    membership::LiveWorker,
    rollout::{Rollout, Round, analysis_due, analysis_interval, canary_steps},
};

/// The longest a round may take, whatever the analysis interval.
const MAX_BUDGET: Duration = Duration::from_secs(30);
/// The shortest budget: time for one query to time out (3 s) and a little more.
const MIN_BUDGET: Duration = Duration::from_secs(5);

/// What a round is for: the revision judged and the metrics it was restricted to. A round
/// finished for anything else (the rollout moved on meanwhile) is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Purpose {
    revision: String,
    only: Vec<String>,
}

enum State {
    Running,
    Done(Purpose, Round),
}

/// The rounds in flight or finished, by pool (namespace, name).
#[derive(Default)]
pub struct Rounds(Mutex<HashMap<(String, String), State>>);

/// The time a round may take: the analysis interval, within [5 s, 30 s].
pub fn budget(pool: &ActorPool) -> Duration {
    let interval = analysis_interval(pool).unsigned_abs();
    interval.clamp(MIN_BUDGET, MAX_BUDGET)
}

/// The round to decide with now, if one is due and finished; otherwise starts it (once) and
/// returns `None`, so that this reconcile places actors without waiting for it.
pub(super) fn measure(
    ctx: &Arc<Context>,
    pool: &Arc<ActorPool>,
    snap: &Snapshot,
    current: &Rollout,
) -> Option<Round> {
    forget_deleted_pools(ctx);
    let target = snap.target.as_str();
    let revision = analysis_due(pool, current, target, snap.workers_of(target).len(), snap.now)?;
    let purpose = Purpose {
        only: current_step_metrics(pool, current, target),
        revision,
    };
    let key = (snap.ns.clone(), snap.name.clone());
    let mut rounds = ctx.rounds.0.lock().unwrap_or_else(|e| e.into_inner());
    match rounds.remove(&key) {
        Some(State::Done(done_for, round)) if done_for == purpose => return Some(round),
        // Still measuring (for this purpose or an older one: it ends within its budget).
        Some(running @ State::Running) => {
            rounds.insert(key, running);
            return None;
        }
        // Done for a step or revision the rollout has left: dropped, measured again.
        Some(State::Done(..)) | None => {}
    }
    rounds.insert(key.clone(), State::Running);
    drop(rounds);
    spawn_round(ctx, pool, snap, current, key, purpose);
    None
}

/// Drops the rounds of pools deleted since: nothing would ever take them.
fn forget_deleted_pools(ctx: &Context) {
    let mut rounds = ctx.rounds.0.lock().unwrap_or_else(|e| e.into_inner());
    rounds.retain(|(ns, name), _| ctx.pools.get(&ObjectRef::new(name).within(ns)).is_some());
}

fn spawn_round(
    ctx: &Arc<Context>,
    pool: &Arc<ActorPool>,
    snap: &Snapshot,
    current: &Rollout,
    key: (String, String),
    purpose: Purpose,
) {
    let owned = |rev: &str| -> Vec<LiveWorker> { snap.workers_of(rev).into_iter().cloned().collect() };
    let judged_workers = owned(&purpose.revision);
    let stable = current.stable.clone().filter(|s| *s != purpose.revision);
    let stable_workers = stable.as_deref().map(owned).unwrap_or_default();
    let (ctx, pool) = (ctx.clone(), pool.clone());
    let budget = budget(&pool);
    tokio::spawn(async move {
        let judged_refs: Vec<&LiveWorker> = judged_workers.iter().collect();
        let stable_refs: Vec<&LiveWorker> = stable_workers.iter().collect();
        let judged = Revision {
            name: &purpose.revision,
            workers: &judged_refs,
        };
        let baseline = stable.as_deref().map(|name| Revision {
            name,
            workers: &stable_refs,
        });
        let started = k8s_openapi::jiff::Timestamp::now();
        let measuring = ctx.analyzer.measure(&pool, judged, baseline, &purpose.only);
        let round = match tokio::time::timeout(budget, measuring).await {
            Ok(round) => round,
            Err(_) => over_budget(&pool, &purpose, budget, started),
        };
        for r in &round.results {
            ctx.metrics
                .measurements
                .with_label_values(&[&format!("{:?}", r.outcome)])
                .inc();
        }
        let pool_ref = ObjectRef::new(&key.1).within(&key.0);
        let mut rounds = ctx.rounds.0.lock().unwrap_or_else(|e| e.into_inner());
        // The pool may be gone by now (nothing would ever take the round): kept only if not.
        if ctx.pools.get(&pool_ref).is_some() {
            rounds.insert(key, State::Done(purpose, round));
        } else {
            rounds.remove(&key);
        }
        drop(rounds);
        ctx.poke(pool_ref);
    });
}

/// A round that did not finish within its budget: every metric it was to measure is
/// inconclusive, and says why.
fn over_budget(
    pool: &ActorPool,
    purpose: &Purpose,
    budget: Duration,
    started: k8s_openapi::jiff::Timestamp,
) -> Round {
    let results = pool
        .spec
        .analysis
        .iter()
        .flat_map(|a| a.metrics.iter())
        .filter(|m| purpose.only.is_empty() || purpose.only.contains(&m.name))
        .map(|m| MetricResult {
            name: m.name.clone(),
            outcome: MeasurementOutcome::Inconclusive,
            value: None,
            threshold: threshold_of(m),
            message: format!(
                "the analysis round of pool {} took longer than its budget of {}s (is the metrics provider reachable?)",
                pool.name_any(),
                budget.as_secs()
            ),
            measurements: Vec::new(),
        })
        .collect();
    Round {
        revision: purpose.revision.clone(),
        results,
        time: started,
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
