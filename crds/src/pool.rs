//! `ActorPool`: a fleet of worker pods of one worker image, and how new versions of it roll out.

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::PodTemplateSpec, apimachinery::pkg::apis::meta::v1::Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, DURATION_PATTERN};

/// An ActorPool is a fleet of worker pods running one worker image. Each revision of its pod
/// template becomes its own Deployment; the operator places the pool's Actors on its live workers
/// and rolls new revisions out canary or blue-green, judged by metrics, rolling back by itself.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "troupe.dev",
    version = "v1alpha1",
    kind = "ActorPool",
    namespaced,
    status = "ActorPoolStatus",
    shortname = "pool",
    shortname = "ap",
    category = "troupe",
    derive = "PartialEq",
    scale = r#"{"specReplicasPath":".spec.replicas","statusReplicasPath":".status.replicas","labelSelectorPath":".status.selector"}"#,
    printcolumn(
        name = "Workers",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Desired worker pods"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyWorkers",
        description = "Worker pods with a live lease"
    ),
    printcolumn(
        name = "Actors",
        type_ = "integer",
        json_path = ".status.actors.total",
        description = "Actors in the pool"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Stable",
        type_ = "string",
        json_path = ".status.stableRevision",
        description = "The stable revision"
    ),
    printcolumn(
        name = "Canary",
        type_ = "string",
        json_path = ".status.canaryRevision",
        description = "The revision being rolled out"
    ),
    printcolumn(
        name = "Weight",
        type_ = "integer",
        json_path = ".status.canaryWeight",
        description = "Percent of actors on the canary"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ActorPoolSpec {
    /// How many worker pods the pool runs (per revision during a blue-green rollout). Works with
    /// `kubectl scale actorpool` and a HorizontalPodAutoscaler through the scale subresource.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,

    /// The worker pods' template (image, command, env, resources, probes…). A change to it is a
    /// new revision and starts a rollout per `strategy`.
    #[schemars(schema_with = "crate::common::pod_template_schema")]
    pub template: PodTemplateSpec,

    /// How many actors one worker hosts at most. Actors beyond the pool's capacity stay Pending
    /// with reason PoolAtCapacity.
    #[serde(default = "default_actors_per_worker")]
    #[schemars(range(min = 1, max = 1000000))]
    pub actors_per_worker: i32,

    /// Each actor's mailbox bound and what happens when it is full.
    #[serde(default)]
    pub mailbox: MailboxSpec,

    /// How a new revision rolls out. Unset: a canary that moves every actor at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<RolloutStrategy>,

    /// Metrics that judge a new revision during analysis steps (canary) or before and after
    /// promotion (blue-green).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,

    /// Rolls back on Prometheus alerts received through Alertmanager's webhook, and within a
    /// window after promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<AlertRollbackSpec>,

    /// Holds the rollout where it is (no step advances) until set back to false.
    #[serde(default)]
    pub paused: bool,

    /// Also create a headless Service `<pool>-workers` selecting every worker of the pool (all
    /// revisions), port `http`: stable DNS names for the workers' APIs and a target for
    /// Prometheus' endpoint discovery.
    #[serde(default)]
    pub headless_service: bool,
}

fn default_replicas() -> i32 {
    1
}
fn default_actors_per_worker() -> i32 {
    1000
}

/// The bound of each actor's mailbox (Ractor mailboxes are unbounded; the worker enforces this).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.blockTimeout) || self.whenFull == 'Block'",
     "message": "mailbox.blockTimeout only applies when mailbox.whenFull is Block"}
]))]
pub struct MailboxSpec {
    /// Messages waiting in one actor's mailbox at most.
    #[serde(default = "default_mailbox_capacity")]
    #[schemars(range(min = 1, max = 1000000))]
    pub capacity: i32,
    /// What a send to a full mailbox does: Reject (the sender gets 429), DropOldest, or Block
    /// (the sender waits up to `blockTimeout`, then gets 429).
    #[serde(default)]
    pub when_full: MailboxFullPolicy,
    /// With `whenFull: Block`, how long a sender waits for room. Default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub block_timeout: Option<String>,
}

impl Default for MailboxSpec {
    fn default() -> Self {
        Self {
            capacity: default_mailbox_capacity(),
            when_full: MailboxFullPolicy::default(),
            block_timeout: None,
        }
    }
}

fn default_mailbox_capacity() -> i32 {
    1000
}

/// What a send to a full mailbox does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MailboxFullPolicy {
    /// Refuse the new message; the sender gets 429 Too Many Requests.
    #[default]
    Reject,
    /// Accept the new message and drop the oldest waiting one.
    DropOldest,
    /// Make the sender wait for room, up to `blockTimeout`.
    Block,
}

/// Exactly one of `canary` or `blueGreen`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.canary) != has(self.blueGreen)",
     "message": "strategy: set exactly one of canary or blueGreen"}
]))]
pub struct RolloutStrategy {
    /// Move a growing share of the pool's actors to the new revision, step by step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    /// Bring the new revision up in full, then switch every actor at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
}

/// A canary rollout: the weight is the share of the pool's actors placed on canary workers, so
/// work is split through placement, with no service mesh.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// The steps, in order. After the last one the canary is promoted to stable.
    #[schemars(length(min = 1, max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()",
         "message": "canary setWeight steps must not decrease (e.g. 10, 25, 50, 100)"}
    ]))]
    pub steps: Vec<CanaryStep>,
    /// How long the old revision's workers stay up after promotion or abort, for an instant rollback.
    #[serde(default = "default_scale_down_delay")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub scale_down_delay: String,
    /// A step that should make progress by itself (a setWeight waiting for canary workers and
    /// actors, an analysis step waiting for passing rounds) and has not finished in this long
    /// aborts the rollout, which rolls back. Pauses do not count.
    #[serde(default = "default_progress_deadline")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub progress_deadline: String,
}

fn default_scale_down_delay() -> String {
    "30s".into()
}
fn default_progress_deadline() -> String {
    "10m".into()
}

/// One canary step: exactly one of setWeight, pause or analysis.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.setWeight) ? 1 : 0) + (has(self.pause) ? 1 : 0) + (has(self.analysis) ? 1 : 0) == 1",
     "message": "each canary step sets exactly one of setWeight, pause or analysis"}
]))]
pub struct CanaryStep {
    /// Move this percentage of the pool's actors to the canary revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub set_weight: Option<i32>,
    /// Wait: for a duration, or until promoted by hand when no duration is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
    /// Run the pool's analysis now; the step passes when it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStep>,
}

/// A pause: timed, or indefinite (until `kubectl troupe promote`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// How long to wait. Unset: wait until promoted by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub duration: Option<String>,
}

/// An analysis step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStep {
    /// How many intervals of the pool's analysis this step runs (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub count: Option<i32>,
    /// Only these metrics of `spec.analysis.metrics`, by name. Unset: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub metrics: Vec<String>,
}

/// A blue-green rollout.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// Switch the actors to the new revision by itself once it is ready (and pre-promotion
    /// analysis passed). False: wait for `kubectl troupe promote`.
    #[serde(default = "default_true")]
    pub auto_promotion: bool,
    /// With auto-promotion, how long the new revision must have been ready before the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub auto_promotion_delay: Option<String>,
    /// How long the old revision stays up after the switch, so that a rollback is instant.
    #[serde(default = "default_scale_down_delay")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub scale_down_delay: String,
    /// Run the pool's analysis against the new revision before the switch.
    #[serde(default)]
    pub pre_promotion_analysis: bool,
    /// Run the pool's analysis after the switch; a failure switches back to the old revision.
    #[serde(default)]
    pub post_promotion_analysis: bool,
}

fn default_true() -> bool {
    true
}

/// How a new revision is judged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// How often each metric is measured.
    #[serde(default = "default_interval")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub interval: String,
    /// Failed measurements tolerated; one more aborts the rollout.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub failure_limit: i32,
    /// Measurements without data tolerated in a row; one more aborts the rollout. No data is
    /// never counted as a pass.
    #[serde(default = "default_inconclusive_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub inconclusive_limit: i32,
    /// The metrics; every one must pass.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(m, self.exists_one(n, n.name == m.name))", "message": "analysis metric names must be unique"}
    ]))]
    pub metrics: Vec<MetricSpec>,
}

fn default_interval() -> String {
    "10s".into()
}
fn default_inconclusive_limit() -> i32 {
    3
}

/// One metric and its threshold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.template) != has(self.provider)",
     "message": "a metric sets exactly one of template (a built-in metric) or provider"},
    {"rule": "has(self.template) || has(self.threshold)",
     "message": "a metric with a provider needs a threshold"}
]))]
pub struct MetricSpec {
    /// The metric's name, shown in status and in the abort reason.
    #[schemars(
        length(min = 1, max = 63),
        pattern(r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$")
    )]
    pub name: String,
    /// A built-in metric with its usual threshold (which `threshold` may override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<BuiltinMetric>,
    /// Where the value comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<MetricProvider>,
    /// The bounds a passing value stays within.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Threshold>,
    /// Also compare with the stable revision, measured the same way in the same round: the
    /// canary fails when its value is more than this many times the stable one (1.5: at most
    /// 50 % worse). For metrics where larger is worse. A stable value of 0, or no stable data,
    /// leaves the threshold alone to decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0, max = 1000.0))]
    pub max_ratio_to_stable: Option<f64>,
}

/// Built-in metrics for the usual rollback triggers, measured on the canary revision's workers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BuiltinMetric {
    /// Share of failed messages, fails above 0.05 (5 %).
    ErrorRate,
    /// 99th percentile message latency in seconds, fails above 0.1 (100 ms).
    LatencyP99,
    /// Actor restarts per minute, fails above 1.
    RestartRate,
    /// Share of failing worker health checks, fails above 0.
    HealthCheckFailures,
}

/// Where a metric's value comes from: exactly one provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.prometheus) != has(self.worker)",
     "message": "a metric provider sets exactly one of prometheus or worker"}
]))]
pub struct MetricProvider {
    /// A PromQL query returning one value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProvider>,
    /// A metric the operator reads directly from the canary workers' /metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerMetricProvider>,
}

/// A PromQL query.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusProvider {
    /// The Prometheus server, e.g. `http://prometheus.monitoring:9090`. Unset: the operator's
    /// `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https?://"))]
    pub address: Option<String>,
    /// The query. `{{revision}}`, `{{pool}}` and `{{namespace}}` are replaced by the canary's
    /// revision, the pool's name and namespace.
    #[schemars(length(min = 1, max = 8192))]
    pub query: String,
}

/// A metric read from the workers' own /metrics.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerMetricProvider {
    /// Which of the workers' metrics.
    pub metric: BuiltinMetric,
}

/// Bounds a passing value stays within; at least one of min or max.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.min) || has(self.max)", "message": "a threshold sets min, max or both"},
    {"rule": "!has(self.min) || !has(self.max) || self.min <= self.max", "message": "threshold.min must not exceed threshold.max"}
]))]
pub struct Threshold {
    /// Fails when the value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Fails when the value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
}

/// Automated rollback on Prometheus alerts routed to the operator by Alertmanager.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRollbackSpec {
    /// Act on firing alerts whose `namespace` and `pool` labels name this pool.
    #[serde(default = "default_true")]
    pub on_alerts: bool,
    /// Further labels an alert must carry to count (e.g. `severity: critical`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// A revision promoted less than this long ago is rolled back by a matching alert; after it,
    /// alerts only abort rollouts in progress.
    #[serde(default = "default_rollback_window")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub window: String,
}

fn default_rollback_window() -> String {
    "15m".into()
}

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

/// The latest measurement of one metric.
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
    /// The latest measurement of each metric.
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
