//! Pools: the overview's rows, the recent rollbacks, and a pool's rollout (steps with the current
//! one marked, analysis per metric, the abort reason).

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use troupe_crds::{AbortReason, ActorPool, ActorPoolStatus, AnalysisStatus, CanaryStep, PoolPhase};

/// One pool in the overview.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolRow {
    pub namespace: String,
    pub name: String,
    pub phase: Option<PoolPhase>,
    pub stable: Option<String>,
    pub canary: Option<String>,
    pub weight: Option<i32>,
    pub ready: i32,
    pub desired: i32,
    pub actors: i32,
    /// Actors by phase as the operator counted them, in the order of `ActorPhase::ALL`.
    pub by_phase: Vec<(String, i32)>,
    pub paused: bool,
}

impl PoolRow {
    pub fn of(pool: &ActorPool) -> PoolRow {
        let s = pool.status.clone().unwrap_or_default();
        let by_phase = troupe_crds::ActorPhase::ALL
            .iter()
            .filter_map(|p| {
                let key = format!("{p:?}");
                s.actors.by_phase.get(&key).filter(|n| **n > 0).map(|n| (key, *n))
            })
            .collect();
        PoolRow {
            namespace: pool.namespace().unwrap_or_default(),
            name: pool.name_any(),
            phase: s.phase,
            stable: s.stable_revision,
            canary: s.canary_revision,
            weight: s.canary_weight,
            ready: s.ready_workers,
            desired: s.desired_workers,
            actors: s.actors.total,
            by_phase,
            paused: pool.spec.paused,
        }
    }
}

/// Every pool whose name contains `search`, by namespace then name.
pub fn pool_rows(pools: &[Arc<ActorPool>], search: &str) -> Vec<PoolRow> {
    let mut rows: Vec<PoolRow> = pools
        .iter()
        .filter(|p| super::matches(&p.name_any(), search))
        .map(|p| PoolRow::of(p))
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    rows
}

/// A rollout that was aborted and rolled back, with why.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollback {
    pub namespace: String,
    pub pool: String,
    pub abort: AbortReason,
}

/// The pools' last aborts, newest first, at most `limit`. A pool keeps only its last abort in
/// status (`status.abort`), so this is one per pool: the recent history across pools.
pub fn recent_rollbacks(pools: &[Arc<ActorPool>], limit: usize) -> Vec<Rollback> {
    let mut out: Vec<Rollback> = pools
        .iter()
        .filter_map(|p| {
            let abort = p.status.as_ref()?.abort.clone()?;
            Some(Rollback {
                namespace: p.namespace().unwrap_or_default(),
                pool: p.name_any(),
                abort,
            })
        })
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.abort.time.0));
    out.truncate(limit);
    out
}

/// Where a step stands in the rollout in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepState {
    Done,
    Current,
    Upcoming,
}

/// One canary step as text, with its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepView {
    pub index: usize,
    pub text: String,
    pub state: StepState,
}

/// How the pool rolls out, and where the rollout in progress is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    Canary(Vec<StepView>),
    /// The blue-green stage in progress, if a rollout is under way.
    BlueGreen(Option<&'static str>),
}

/// The stages of a blue-green rollout, by `status.currentStepIndex` (as `kubectl troupe status`).
const BLUE_GREEN_STAGES: [&str; 3] = ["new revision coming up", "waiting to switch", "switching actors"];

/// The pool's steps; without a strategy, a canary that moves every actor at once (the operator's
/// default). A step is current only while a canary revision is being rolled out.
pub fn strategy(pool: &ActorPool) -> Strategy {
    let s = pool.status.clone().unwrap_or_default();
    let rolling = s.canary_revision.is_some();
    let current = s.current_step_index.and_then(|i| usize::try_from(i).ok());
    let strategy = pool.spec.strategy.as_ref();
    if strategy.is_some_and(|st| st.blue_green.is_some()) {
        let stage = current
            .filter(|_| rolling)
            .and_then(|i| BLUE_GREEN_STAGES.get(i).copied());
        return Strategy::BlueGreen(stage);
    }
    let steps = strategy
        .and_then(|st| st.canary.as_ref())
        .map(|c| c.steps.clone())
        .unwrap_or_else(|| {
            vec![CanaryStep {
                set_weight: Some(100),
                pause: None,
                analysis: None,
            }]
        });
    Strategy::Canary(
        steps
            .iter()
            .enumerate()
            .map(|(index, step)| StepView {
                index,
                text: step_text(step),
                state: match current {
                    Some(c) if rolling && c == index => StepState::Current,
                    Some(c) if rolling && c > index => StepState::Done,
                    _ => StepState::Upcoming,
                },
            })
            .collect(),
    )
}

fn step_text(step: &CanaryStep) -> String {
    if let Some(w) = step.set_weight {
        format!("setWeight {w}")
    } else if let Some(p) = &step.pause {
        match &p.duration {
            Some(d) => format!("pause {d}"),
            None => "pause until promoted".into(),
        }
    } else if let Some(a) = &step.analysis {
        let metrics = if a.metrics.is_empty() {
            "every metric".to_string()
        } else {
            a.metrics.join(", ")
        };
        format!("analysis ×{} ({metrics})", a.count.unwrap_or(1))
    } else {
        "?".into()
    }
}

/// The analysis of the revision being judged, as the status has it.
pub fn analysis(status: &ActorPoolStatus) -> Option<&AnalysisStatus> {
    status.analysis.as_ref()
}

/// When the pool's rollout step began, as an age.
pub fn step_age(status: &ActorPoolStatus, now: Timestamp) -> Option<String> {
    status
        .step_started_at
        .as_ref()
        .map(|t| super::time::age(now, t.0))
}
