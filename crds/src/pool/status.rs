//! What the operator observes of a pool: phase, counts, rollout progress, analysis, aborts.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Condition;

/// The pool's state, as `kubectl get actorpools` shows it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PoolPhase {
    /// All actors placed on the stable revision; no rollout in progress.
    #[default]
    Healthy,
    /// A rollout is moving through its steps.
    Progressing,
    /// A rollout waits at a pause step or `spec.paused`.
    Paused,
    /// The last rollout was aborted and rolled back (see `status.abort`), or workers are missing.
    Degraded,
    /// Actors are moving back to the stable revision.
    RollingBack,
}

/// Actors of the pool, by phase.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorCounts {
    /// All actors naming this pool.
    pub total: i32,
    /// Count by phase (Pending, Placed, Starting, Running, Paused, Failed, Migrating).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_phase: BTreeMap<String, i32>,
}

/// What aborted the last rollout.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AbortKind {
    /// A metric failed its threshold more often than the failure limit.
    Analysis,
    /// A Prometheus alert fired (through Alertmanager).
    Alert,
    /// The progress deadline passed.
    Deadline,
    /// Aborted by hand.
    Manual,
}

/// Why and when the last rollout was aborted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AbortReason {
    /// Analysis, Alert, Deadline or Manual.
    pub kind: AbortKind,
    /// The revision that was aborted.
    pub revision: String,
    /// The failing metric, for Analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// The measured value, for Analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The threshold it broke, for Analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    /// The alert's name, for Alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// A sentence a person can read.
    pub message: String,
    /// When the abort was decided.
    pub time: Time,
    /// When the problem was first seen: the first failed measurement, or the alert's `startsAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_at: Option<Time>,
    /// When every actor was back on the stable revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
}

/// The outcome of one measurement.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MeasurementOutcome {
    /// The value was within the threshold.
    Passed,
    /// The value broke the threshold.
    Failed,
    /// No value: no data, no traffic, or the provider could not be reached. Never a pass.
    Inconclusive,
}

/// How many recent measurements of each metric `status.analysis.results[].measurements` keeps
/// (Argo Rollouts keeps an AnalysisRun's measurements the same way). Ten rounds are a minute and
/// a half at the default 10 s interval, enough to see a trend, while a pool's status stays small:
/// a measurement is about 80 bytes of JSON, so the 16 metrics an analysis may define add at most
/// about 13 KiB.
pub const MEASUREMENT_HISTORY: usize = 10;

/// One measurement of a metric, kept in its recent history.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// When the round of measurements it belongs to was taken.
    pub time: Time,
    /// Passed, Failed or Inconclusive.
    pub outcome: MeasurementOutcome,
    /// The measured value; absent when there was none (no data, or a query that could not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// The latest measurement of one metric, and its recent ones.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// The metric's name in `spec.analysis.metrics`.
    pub name: String,
    /// Passed, Failed or Inconclusive.
    pub outcome: MeasurementOutcome,
    /// The measured value, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The threshold as text, e.g. `<= 0.05`.
    pub threshold: String,
    /// What was measured or why there is no value.
    pub message: String,
    /// The recent measurements of this metric on `status.analysis.revision`, oldest first and
    /// the latest (this result's own) last, at most 10: older ones are dropped. Started afresh
    /// when the revision analysed changes or its analysis starts over (a retry, post-promotion
    /// analysis), and when a round leaves this metric out (an analysis step measuring only some
    /// metrics). Rounds without a value are kept as such.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MEASUREMENT_HISTORY))]
    pub measurements: Vec<Measurement>,
}

/// The analysis of the revision being judged.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatus {
    /// The revision these measurements are about.
    pub revision: String,
    /// When the last round of measurements was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_at: Option<Time>,
    /// Failed measurements in this rollout; one more than `failureLimit` aborts it.
    #[serde(default)]
    pub failures: i32,
    /// Inconclusive rounds in a row; one more than `inconclusiveLimit` aborts the rollout.
    #[serde(default)]
    pub inconclusive: i32,
    /// Passing rounds since the current step began (an analysis step waits for its `count`).
    #[serde(default)]
    pub successes: i32,
    /// When the first failed measurement of this rollout was taken (for time-to-detect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure_at: Option<Time>,
    /// The latest measurement of each metric of the last round, each with its recent ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub results: Vec<MetricResult>,
}

/// A rollout command the operator acted on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandledCommand {
    /// The annotation, e.g. `troupe.dev/promote`.
    pub annotation: String,
    /// Its value when acted on (`kubectl troupe` writes the time, so each command is unique).
    pub value: String,
}

/// What the operator observes of the pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorPoolStatus {
    /// Healthy, Progressing, Paused, Degraded or RollingBack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PoolPhase>,
    /// Worker pods of all revisions (read by the scale subresource).
    #[serde(default)]
    pub replicas: i32,
    /// Worker pods wanted across revisions.
    #[serde(default)]
    pub desired_workers: i32,
    /// Worker pods with a live lease.
    #[serde(default)]
    pub ready_workers: i32,
    /// The label selector of the pool's worker pods, for the scale subresource (HPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The pool's actors, by phase.
    #[serde(default)]
    pub actors: ActorCounts,
    /// The revision most actors run on when no rollout is in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// The revision being rolled out, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// Percent of the pool's actors placed on the canary revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,
    /// Index of the canary step in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// When the current canary step (or blue-green stage) began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// When the rollout in progress began (for the progress deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_started_at: Option<Time>,
    /// When the stable revision was promoted (for the rollback window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<Time>,
    /// The stable revision before the last promotion. Its Deployment stays up for the scale-down
    /// delay and scaled to zero for the rollback window, so that a rollback finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_revision: Option<String>,
    /// Measurements of the revision being judged (canary, blue-green preview, or a revision just
    /// promoted with post-promotion analysis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStatus>,
    /// Why the last rollout was aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortReason>,
    /// The last rollout command (annotation `troupe.dev/promote`, `abort` or `retry`) acted on,
    /// with the annotation's value. A command still on the pool with this value was acted on
    /// already (its removal did not land) and is only removed, never acted on twice. Cleared once
    /// the annotation is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_command: Option<HandledCommand>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions: Available (workers of the stable revision ready, every actor
    /// placed), Progressing (a rollout is under way, or why it stopped), WorkersDeployed (the
    /// API server accepted every worker Deployment, or its message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
