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

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use troupe_crds::{
    AbortKind, AbortReason, ActorPool, ActorPoolStatus, AnalysisStatus, CanaryStep, MeasurementOutcome,
    MetricResult, PoolPhase, duration::parse_duration,
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

/// The canary steps in effect: the spec's, or one step moving every actor at once.
pub fn canary_steps(pool: &ActorPool) -> Vec<CanaryStep> {
    match pool.spec.strategy.as_ref().and_then(|s| s.canary.as_ref()) {
        Some(c) => c.steps.clone(),
        None => vec![CanaryStep {
            set_weight: Some(100),
            pause: None,
            analysis: None,
        }],
    }
}

fn blue_green(pool: &ActorPool) -> Option<&troupe_crds::BlueGreenStrategy> {
    pool.spec.strategy.as_ref().and_then(|s| s.blue_green.as_ref())
}

fn secs(text: Option<&str>, default: u64) -> SignedDuration {
    let d = text
        .and_then(|t| parse_duration(t).ok())
        .unwrap_or(std::time::Duration::from_secs(default));
    SignedDuration::try_from(d).unwrap_or(SignedDuration::ZERO)
}

/// How long a replaced or aborted revision's workers stay up.
pub fn scale_down_delay(pool: &ActorPool) -> SignedDuration {
    let s = pool.spec.strategy.as_ref();
    let text = s
        .and_then(|s| s.canary.as_ref().map(|c| c.scale_down_delay.as_str()))
        .or_else(|| s.and_then(|s| s.blue_green.as_ref().map(|b| b.scale_down_delay.as_str())));
    secs(text, 30)
}

fn progress_deadline(pool: &ActorPool) -> SignedDuration {
    let text = pool
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.canary.as_ref())
        .map(|c| c.progress_deadline.as_str());
    secs(text, 600)
}

/// The rollback window: how long after a promotion an alert still rolls it back.
pub fn rollback_window(pool: &ActorPool) -> SignedDuration {
    secs(pool.spec.rollback.as_ref().map(|r| r.window.as_str()), 900)
}

/// The analysis interval.
pub fn analysis_interval(pool: &ActorPool) -> SignedDuration {
    secs(pool.spec.analysis.as_ref().map(|a| a.interval.as_str()), 10)
}

fn elapsed(since: Option<Timestamp>, now: Timestamp, d: SignedDuration) -> bool {
    since.is_none_or(|s| now.duration_since(s) >= d)
}

/// Canary workers wanted at `weight` percent: the same share of the pool's workers, at least one.
pub fn canary_replicas(replicas: i32, weight: i32) -> i32 {
    ((replicas as i64 * weight.clamp(0, 100) as i64 + 99) / 100).max(1) as i32
}

/// Which revision, if any, is due a round of measurements now.
pub fn analysis_due(
    pool: &ActorPool,
    r: &Rollout,
    target: &str,
    target_workers: usize,
    now: Timestamp,
) -> Option<String> {
    pool.spec.analysis.as_ref()?;
    let judged = if r.in_progress(target) {
        match blue_green(pool) {
            // Pre-promotion: the preview is measured once it is up.
            Some(bg) => (bg.pre_promotion_analysis && r.step == Some(1) && target_workers > 0)
                .then(|| target.to_string()),
            // Canary: measured throughout, once it has actors or reaches an analysis step.
            None => {
                let steps = canary_steps(pool);
                let at_analysis = r
                    .step
                    .and_then(|i| steps.get(i as usize))
                    .is_some_and(|s| s.analysis.is_some());
                (r.weight.unwrap_or(0) > 0 || at_analysis).then(|| target.to_string())
            }
        }
    } else {
        // Blue-green post-promotion analysis: while the old revision is still up.
        let bg = blue_green(pool)?;
        let promoted = r.promoted_at?;
        (bg.post_promotion_analysis
            && r.previous.is_some()
            && r.stable.as_deref() == Some(target)
            && !elapsed(Some(promoted), now, scale_down_delay(pool)))
        .then(|| target.to_string())
    }?;
    let last = r
        .analysis
        .as_ref()
        .filter(|a| a.revision == judged)
        .and_then(|a| a.measured_at.as_ref().map(|t| t.0));
    elapsed(last, now, analysis_interval(pool)).then_some(judged)
}

struct Machine<'a> {
    pool: &'a ActorPool,
    obs: &'a Observed<'a>,
    r: Rollout,
    notes: Vec<Note>,
    aborted: Option<(AbortKind, Option<f64>)>,
    promoted: bool,
    command_done: bool,
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
        if elapsed(self.r.step_started_at, self.obs.now, progress_deadline(self.pool)) {
            let reason = self.abort_reason(
                AbortKind::Deadline,
                self.obs.target,
                format!("{what} did not happen within the progressDeadline"),
            );
            self.abort(reason);
        }
    }

    fn take_promote(&mut self) -> bool {
        if self.obs.command == Some(Command::Promote) {
            self.command_done = true;
            true
        } else {
            false
        }
    }

    /// Counts a round of measurements; aborts (or rolls back) when a limit is passed.
    fn account(&mut self, round: &Round) {
        let Some(spec) = self.pool.spec.analysis.as_ref() else {
            return;
        };
        let mut a = self
            .r
            .analysis
            .take()
            .filter(|a| a.revision == round.revision)
            .unwrap_or_else(|| AnalysisStatus {
                revision: round.revision.clone(),
                ..Default::default()
            });
        a.measured_at = Some(Time(round.time));
        a.results = round.results.clone();
        let outcome = round.outcome();
        match outcome {
            MeasurementOutcome::Passed => {
                a.successes += 1;
                a.inconclusive = 0;
            }
            MeasurementOutcome::Failed => {
                a.failures += 1;
                a.inconclusive = 0;
                a.first_failure_at.get_or_insert(Time(round.time));
            }
            MeasurementOutcome::Inconclusive => a.inconclusive += 1,
        }
        let failed = a.failures > spec.failure_limit;
        let no_data = a.inconclusive > spec.inconclusive_limit;
        let first_failure = a.first_failure_at.clone();
        let inconclusive = a.inconclusive;
        self.r.analysis = Some(a);
        if !failed && !no_data {
            return;
        }
        let mut reason = self.abort_reason(AbortKind::Analysis, &round.revision, String::new());
        if failed {
            let bad = round
                .results
                .iter()
                .find(|r| r.outcome == MeasurementOutcome::Failed);
            if let Some(bad) = bad {
                reason.metric = Some(bad.name.clone());
                reason.value = bad.value;
                reason.threshold = Some(bad.threshold.clone());
                reason.message = format!(
                    "metric {} = {} broke its threshold {} ({} failed measurements, failureLimit {}): {}",
                    bad.name,
                    bad.value.map(|v| format!("{v:.4}")).unwrap_or_default(),
                    bad.threshold,
                    self.r.analysis.as_ref().map(|a| a.failures).unwrap_or(0),
                    spec.failure_limit,
                    bad.message
                );
            }
            reason.detected_at = first_failure;
        } else {
            let why: Vec<String> = round
                .results
                .iter()
                .filter(|r| r.outcome == MeasurementOutcome::Inconclusive)
                .map(|r| format!("{}: {}", r.name, r.message))
                .collect();
            reason.message = format!(
                "no data for {inconclusive} rounds in a row (inconclusiveLimit {}): {}",
                spec.inconclusive_limit,
                why.join("; ")
            );
        }
        if self.r.in_progress(&round.revision) {
            self.abort(reason);
        } else if self.r.stable.as_deref() == Some(&round.revision) {
            self.roll_back_promoted(reason);
        }
    }

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

    /// Returns whether the rollout waits for a person.
    fn canary_progress(&mut self) -> bool {
        let steps = canary_steps(self.pool);
        let replicas = self.pool.spec.replicas;
        // Instant steps chain in one reconcile; each step at most once.
        for _ in 0..=steps.len() {
            let i = self.r.step.unwrap_or(0).max(0) as usize;
            let Some(step) = steps.get(i) else {
                self.promote();
                return false;
            };
            if let Some(w) = step.set_weight {
                let moved = self.r.weight == Some(w);
                self.r.weight = Some(w);
                let ready = w == 0 || self.obs.target_workers >= canary_replicas(replicas, w) as usize;
                if moved && ready && self.obs.settled {
                    self.next_step();
                    continue;
                }
                self.wait_or_abort(&format!("moving {w}% of the actors to ready canary workers"));
                return false;
            }
            if let Some(p) = &step.pause {
                if self.take_promote() {
                    self.next_step();
                    continue;
                }
                match p.duration.as_deref() {
                    Some(d) if elapsed(self.r.step_started_at, self.obs.now, secs(Some(d), 0)) => {
                        self.next_step();
                        continue;
                    }
                    Some(_) => return false,
                    None => return true,
                }
            }
            if let Some(a) = &step.analysis {
                if self.take_promote() || self.pool.spec.analysis.is_none() {
                    self.next_step();
                    continue;
                }
                let count = a.count.unwrap_or(1);
                let passed = self
                    .r
                    .analysis
                    .as_ref()
                    .filter(|s| Some(&s.revision) == self.r.canary.as_ref())
                    .is_some_and(|s| s.successes >= count);
                if passed {
                    self.next_step();
                    continue;
                }
                self.wait_or_abort(&format!("{count} passing analysis rounds"));
                return false;
            }
            // A step with nothing set cannot pass the schema; skip it rather than stall.
            self.next_step();
        }
        false
    }

    /// Blue-green: 0 = the new revision comes up in full; 1 = pre-promotion analysis and the
    /// promotion wait; 2 = every actor switching. Returns whether it waits for a person.
    fn blue_green_progress(&mut self, bg: &troupe_crds::BlueGreenStrategy) -> bool {
        let replicas = self.pool.spec.replicas.max(1) as usize;
        if self.r.step == Some(0) {
            if self.obs.target_workers < replicas {
                self.r.weight = Some(0);
                self.wait_or_abort(&format!("{replicas} ready workers of the new revision"));
                return false;
            }
            self.next_step();
        }
        if self.r.step == Some(1) {
            let promote_now = self.take_promote();
            let analysed = !bg.pre_promotion_analysis
                || self.pool.spec.analysis.is_none()
                || self
                    .r
                    .analysis
                    .as_ref()
                    .is_some_and(|a| Some(&a.revision) == self.r.canary.as_ref() && a.successes >= 1);
            let delay = secs(bg.auto_promotion_delay.as_deref(), 0);
            let due = bg.auto_promotion && elapsed(self.r.step_started_at, self.obs.now, delay);
            if promote_now || (analysed && due) {
                self.next_step();
                self.r.weight = Some(100);
                // "Settled" was about the old weight: the switch is judged next time.
                return false;
            } else {
                if !analysed {
                    self.wait_or_abort("a passing pre-promotion analysis");
                }
                return !bg.auto_promotion && analysed;
            }
        }
        if self.r.step == Some(2) {
            self.r.weight = Some(100);
            if self.obs.settled {
                self.promote();
            } else {
                self.wait_or_abort("switching every actor to the new revision");
            }
        }
        false
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
                    format!("rolling out {target}: step {step}, weight {weight}%"),
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
    }
    .run()
}

#[cfg(test)]
mod tests;
