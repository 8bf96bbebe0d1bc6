//! The rollout state machine: from the pool's spec, its rollout status and what was observed in
//! this reconcile, the next rollout status, the phase, and the Events to emit. Pure: no I/O, so
//! every transition is unit-tested without a server.
//!
//! The rules, in the order they apply:
//! 1. The first revision a pool ever runs is stable at once.
//! 2. A matching firing alert aborts a rollout in progress, or rolls back a revision promoted
//!    within the rollback window (to the previous revision, which is kept for that window).
//! 3. `troupe.dev/abort` aborts; `troupe.dev/retry` clears the abort of the current template's
//!    revision so that it rolls out again; `troupe.dev/promote` skips the current pause or
//!    analysis step (canary) or switches now (blue-green).
//! 4. A failed analysis (more failures than `failureLimit`, or more inconclusive rounds in a row
//!    than `inconclusiveLimit`) or a passed progress deadline aborts.
//! 5. An aborted revision stays aborted while the template is unchanged (phase Degraded, every
//!    actor on stable). A new template during a rollout restarts the rollout with the new
//!    revision from its first step; actors on the replaced canary go back to stable first.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use troupe_crds::{
    AbortKind, AbortReason, ActorPool, ActorPoolStatus, AnalysisStatus, MeasurementOutcome, MetricResult,
    PoolPhase,
};

/// The rollout part of a pool's status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rollout {
    pub stable: Option<String>,
    pub canary: Option<String>,
    pub weight: Option<i32>,
    pub step: Option<i32>,
    pub step_started_at: Option<Timestamp>,
    pub rollout_started_at: Option<Timestamp>,
    pub promoted_at: Option<Timestamp>,
    pub previous: Option<String>,
    pub abort: Option<AbortReason>,
    pub analysis: Option<AnalysisStatus>,
}

impl Rollout {
    pub fn from_status(s: &ActorPoolStatus) -> Self {
        Self {
            stable: s.stable_revision.clone(),
            canary: s.canary_revision.clone(),
            weight: s.canary_weight,
            step: s.current_step_index,
            step_started_at: s.step_started_at.as_ref().map(|t| t.0),
            rollout_started_at: s.rollout_started_at.as_ref().map(|t| t.0),
            promoted_at: s.promoted_at.as_ref().map(|t| t.0),
            previous: s.previous_revision.clone(),
            abort: s.abort.clone(),
            analysis: s.analysis.clone(),
        }
    }

    /// Writes the status fields this rollout owns into `s`.
    pub fn apply_to(&self, s: &mut ActorPoolStatus) {
        let t = |x: &Option<Timestamp>| x.map(Time);
        s.stable_revision = self.stable.clone();
        s.canary_revision = self.canary.clone();
        s.canary_weight = self.weight;
        s.current_step_index = self.step;
        s.step_started_at = t(&self.step_started_at);
        s.rollout_started_at = t(&self.rollout_started_at);
        s.promoted_at = t(&self.promoted_at);
        s.previous_revision = self.previous.clone();
        s.abort = self.abort.clone();
        s.analysis = self.analysis.clone();
    }

    /// Whether a rollout of `target` is in progress.
    pub fn in_progress(&self, target: &str) -> bool {
        self.canary.as_deref() == Some(target)
    }
}

/// A manual command, from an annotation on the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Promote,
    Abort,
    Retry,
}

/// A firing alert that names this pool.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertHit {
    pub name: String,
    pub starts_at: Option<Timestamp>,
    pub summary: String,
}

/// One round of measurements of every metric, of one revision.
#[derive(Clone, Debug, PartialEq)]
pub struct Round {
    pub revision: String,
    pub results: Vec<MetricResult>,
    pub time: Timestamp,
}

impl Round {
    pub fn outcome(&self) -> MeasurementOutcome {
        if self
            .results
            .iter()
            .any(|r| r.outcome == MeasurementOutcome::Failed)
        {
            MeasurementOutcome::Failed
        } else if self.results.is_empty()
            || self
                .results
                .iter()
                .any(|r| r.outcome == MeasurementOutcome::Inconclusive)
        {
            MeasurementOutcome::Inconclusive
        } else {
            MeasurementOutcome::Passed
        }
    }
}

/// What this reconcile saw.
pub struct Observed<'a> {
    /// The revision of the pool's current template.
    pub target: &'a str,
    pub now: Timestamp,
    /// Live workers of the target revision.
    pub target_workers: usize,
    /// Every actor is on a live worker of the revision the current weight gives it.
    pub settled: bool,
    pub round: Option<Round>,
    pub command: Option<Command>,
    pub alert: Option<AlertHit>,
}

/// An Event to emit on the pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The outcome of one step of the state machine.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub next: Rollout,
    pub phase: PoolPhase,
    /// The Progressing condition: status, reason, message.
    pub progressing: (bool, &'static str, String),
    pub notes: Vec<Note>,
    /// The command was acted on (and its annotation can be removed).
    pub command_done: bool,
    /// A rollback was decided now: its kind and seconds from detection to decision.
    pub aborted: Option<(AbortKind, Option<f64>)>,
    /// A rollback finished now: seconds from decision to every actor on stable.
    pub rollback_completed: Option<f64>,
    pub promoted: bool,
}

struct Machine<'a> {
    pool: &'a ActorPool,
    obs: &'a Observed<'a>,
    r: Rollout,
    notes: Vec<Note>,
    aborted: Option<(AbortKind, Option<f64>)>,
    promoted: bool,
    command_done: bool,
    /// What the rollout waits for, when it waits for something that should happen by itself.
    waiting: Option<String>,
}

impl Machine<'_> {
    fn note(&mut self, warning: bool, reason: &'static str, message: String) {
        self.notes.push(Note {
            warning,
            reason,
            message,
        });
    }

    fn abort_reason(&self, kind: AbortKind, revision: &str, message: String) -> AbortReason {
        AbortReason {
            kind,
            revision: revision.to_string(),
            metric: None,
            value: None,
            threshold: None,
            alert: None,
            message,
            time: Time(self.obs.now),
            detected_at: None,
            completed_at: None,
        }
    }

    /// Records an abort decision: its time to detect, the Event, and the reason in status.
    /// The caller puts the actors back.
    fn decide(&mut self, mut reason: AbortReason, event: &'static str, note: String) {
        let detect = reason
            .detected_at
            .as_ref()
            .map(|d| self.obs.now.duration_since(d.0).as_secs_f64().max(0.0));
        reason.detected_at.get_or_insert(Time(self.obs.now));
        self.note(true, event, format!("{note}: {}", reason.message));
        self.aborted = Some((reason.kind, detect));
        self.r.abort = Some(reason);
        self.r.canary = None;
        self.r.weight = None;
        self.r.step = None;
    }

    /// Aborts the rollout in progress: every actor goes back to stable.
    fn abort(&mut self, reason: AbortReason) {
        let note = format!("revision {} aborted", reason.revision);
        self.decide(reason, "RolloutAborted", note);
        self.r.step_started_at = None;
    }

    /// Rolls a promoted revision back to the previous one.
    fn roll_back_promoted(&mut self, reason: AbortReason) {
        let Some(previous) = self.r.previous.take() else {
            return;
        };
        let note = format!("revision {} rolled back to {previous}", reason.revision);
        self.decide(reason, "RolledBack", note);
        self.r.stable = Some(previous);
        self.r.promoted_at = None;
    }

    fn promote(&mut self) {
        let target = self.obs.target.to_string();
        let old = self.r.stable.replace(target.clone());
        self.r.previous = old.filter(|o| *o != target);
        self.r.promoted_at = Some(self.obs.now);
        self.r.canary = None;
        self.r.weight = None;
        self.r.step = None;
        self.r.step_started_at = None;
        self.r.rollout_started_at = None;
        self.r.abort = None;
        let post = blue_green(self.pool).is_some_and(|b| b.post_promotion_analysis);
        if post {
            // Post-promotion analysis starts afresh on the new stable revision.
            self.r.analysis = Some(AnalysisStatus {
                revision: target.clone(),
                ..Default::default()
            });
        } else {
            self.r.analysis = None;
        }
        self.promoted = true;
        self.note(false, "Promoted", format!("revision {target} promoted to stable"));
    }

    fn next_step(&mut self) {
        self.r.step = Some(self.r.step.unwrap_or(0) + 1);
        self.r.step_started_at = Some(self.obs.now);
        if let Some(a) = self.r.analysis.as_mut() {
            a.successes = 0;
        }
    }

    /// Waiting at a step that should make progress by itself: past the progress deadline, the
    /// rollout is aborted. Pauses never count.
    fn wait_or_abort(&mut self, what: &str) {
        self.waiting = Some(what.to_string());
        if elapsed(self.r.step_started_at, self.obs.now, progress_deadline(self.pool)) {
            let reason = self.abort_reason(
                AbortKind::Deadline,
                self.obs.target,
                format!("{what} did not happen within the progressDeadline"),
            );
            self.abort(reason);
        }
    }

    /// Whether a promote command was given and not acted on yet in this decision: it goes past
    /// one step, not every step of the chain.
    fn take_promote(&mut self) -> bool {
        if self.obs.command == Some(Command::Promote) && !self.command_done {
            self.command_done = true;
            true
        } else {
            false
        }
    }

    /// Counts a round of measurements; aborts (or rolls back) when a limit is passed.
    fn run(mut self) -> Decision {
        let obs = self.obs;
        let target = obs.target;
        let now = obs.now;
        // 1. The first revision is stable at once.
        if self.r.stable.is_none() {
            self.r.stable = Some(target.to_string());
        }
        // 2. Alerts.
        if let Some(alert) = &obs.alert {
            let mut reason = self.abort_reason(
                AbortKind::Alert,
                target,
                format!("alert {} fired: {}", alert.name, alert.summary),
            );
            reason.alert = Some(alert.name.clone());
            reason.detected_at = alert.starts_at.map(Time);
            let within_window = self
                .r
                .promoted_at
                .is_some_and(|p| !elapsed(Some(p), now, rollback_window(self.pool)));
            if self.r.in_progress(target) {
                self.abort(reason);
            } else if self.r.stable.as_deref() == Some(target) && self.r.previous.is_some() && within_window {
                self.roll_back_promoted(reason);
            }
        }
        // 3. Commands.
        match obs.command {
            Some(Command::Abort) if self.r.in_progress(target) => {
                let reason = self.abort_reason(AbortKind::Manual, target, "aborted by hand".into());
                self.abort(reason);
                self.command_done = true;
            }
            Some(Command::Retry) => {
                if self.r.abort.as_ref().is_some_and(|a| a.revision == target) {
                    self.r.abort = None;
                    self.r.analysis = None;
                    self.note(false, "RolloutRetried", format!("retrying revision {target}"));
                }
                self.command_done = true;
            }
            Some(Command::Abort) => self.command_done = true,
            // Nothing to promote: the template's revision is stable already, or was aborted
            // (retry it first). Acted on (as a no-op) so that it does not linger and skip a
            // pause of the next rollout.
            Some(Command::Promote) if !self.r.in_progress(target) => {
                let aborted = self.r.abort.as_ref().is_some_and(|a| a.revision == target);
                if aborted || self.r.stable.as_deref() == Some(target) {
                    let why = if aborted {
                        format!(
                            "revision {target} was aborted; retry it (troupe.dev/retry) to roll it out again"
                        )
                    } else {
                        format!("no rollout in progress: revision {target} is stable already")
                    };
                    self.note(false, "PromoteIgnored", why);
                    self.command_done = true;
                }
            }
            _ => {}
        }
        // 4. Measurements.
        if let Some(round) = &obs.round {
            self.account(round);
        }
        // 5. Progress.
        let stable = self.r.stable.clone().unwrap_or_default();
        let aborted_target = self.r.abort.as_ref().is_some_and(|a| a.revision == target);
        let mut paused = false;
        if stable == target {
            self.r.canary = None;
            self.r.weight = None;
            self.r.step = None;
            self.r.step_started_at = None;
            self.r.rollout_started_at = None;
        } else if aborted_target {
            // Stays on stable until the template changes or a retry.
        } else {
            if !self.r.in_progress(target) {
                if let Some(old) = self.r.canary.clone() {
                    self.note(
                        false,
                        "RolloutRestarted",
                        format!("the template changed during the rollout of {old}; rolling out {target} from the first step"),
                    );
                } else {
                    self.note(
                        false,
                        "RolloutStarted",
                        format!("rolling out revision {target} (stable: {stable})"),
                    );
                }
                self.r.canary = Some(target.to_string());
                self.r.weight = Some(0);
                self.r.step = Some(0);
                self.r.step_started_at = Some(now);
                self.r.rollout_started_at = Some(now);
                self.r.analysis = None;
            }
            if self.pool.spec.paused {
                paused = true;
            } else if let Some(bg) = blue_green(self.pool).cloned() {
                paused = self.blue_green_progress(&bg);
            } else {
                paused = self.canary_progress();
            }
        }
        // Housekeeping: the previous revision is forgotten after the rollback window.
        if self.r.previous.is_some()
            && self.r.stable.as_deref() == Some(target)
            && elapsed(self.r.promoted_at, now, rollback_window(self.pool))
        {
            self.r.previous = None;
        }
        // Rollback completion.
        let mut rollback_completed = None;
        let back_on_stable = self.r.canary.is_none() && obs.settled;
        if let Some(a) = self.r.abort.as_mut()
            && a.completed_at.is_none()
            && back_on_stable
            && self.aborted.is_none()
        {
            a.completed_at = Some(Time(now));
            rollback_completed = Some(now.duration_since(a.time.0).as_secs_f64().max(0.0));
        }
        let (phase, progressing) = self.phase(paused);
        Decision {
            next: self.r,
            phase,
            progressing,
            notes: self.notes,
            command_done: self.command_done,
            aborted: self.aborted,
            rollback_completed,
            promoted: self.promoted,
        }
    }

    fn phase(&self, paused: bool) -> (PoolPhase, (bool, &'static str, String)) {
        let target = self.obs.target;
        if let Some(a) = self.r.abort.as_ref().filter(|a| a.revision == target)
            && self.r.stable.as_deref() != Some(target)
        {
            if a.completed_at.is_none() {
                return (
                    PoolPhase::RollingBack,
                    (
                        true,
                        "RollingBack",
                        format!("moving every actor back to {}: {}", self.stable(), a.message),
                    ),
                );
            }
            return (
                PoolPhase::Degraded,
                (
                    false,
                    "RolloutAborted",
                    format!(
                        "revision {target} was aborted ({}); actors run on {}. Change the template, or retry with `kubectl troupe retry`",
                        a.message,
                        self.stable()
                    ),
                ),
            );
        }
        if self.r.in_progress(target) {
            let step = self.r.step.unwrap_or(0);
            let weight = self.r.weight.unwrap_or(0);
            if paused {
                return (
                    PoolPhase::Paused,
                    (
                        true,
                        "RolloutPaused",
                        format!(
                            "rollout of {target} paused at step {step} (weight {weight}%): promote to go on"
                        ),
                    ),
                );
            }
            return (
                PoolPhase::Progressing,
                (
                    true,
                    "RolloutInProgress",
                    match &self.waiting {
                        Some(what) => {
                            format!("rolling out {target}: step {step}, weight {weight}%; waiting for {what}")
                        }
                        None => format!("rolling out {target}: step {step}, weight {weight}%"),
                    },
                ),
            );
        }
        (
            PoolPhase::Healthy,
            (
                false,
                "NoRolloutInProgress",
                format!("revision {} is stable", self.stable()),
            ),
        )
    }

    fn stable(&self) -> String {
        self.r.stable.clone().unwrap_or_default()
    }
}

/// One step of the state machine.
pub fn advance(pool: &ActorPool, current: &Rollout, obs: &Observed) -> Decision {
    Machine {
        pool,
        obs,
        r: current.clone(),
        notes: Vec::new(),
        aborted: None,
        promoted: false,
        command_done: false,
        waiting: None,
    }
    .run()
}

mod account;
mod history;
mod progress;
mod settings;
#[cfg(test)]
mod tests;

pub use settings::{
    analysis_due, analysis_interval, canary_replicas, canary_steps, rollback_window, scale_down_delay,
};
use settings::{blue_green, elapsed, progress_deadline, secs};
