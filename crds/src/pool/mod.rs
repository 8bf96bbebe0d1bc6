//! `ActorPool`: a fleet of worker pods of one worker image, and how new versions of it roll out.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::DURATION_PATTERN;

mod analysis;
mod persistence;
mod rollout;
mod status;

pub use analysis::{
    AlertRollbackSpec, AnalysisSpec, BuiltinMetric, MetricProvider, MetricSpec, PrometheusProvider,
    Threshold, WorkerMetricProvider,
};
pub use persistence::{
    DEFAULT_CA_KEY, DEFAULT_CHECKPOINT_EVERY, PersistenceMode, PersistenceSpec, StoreSecretRef, WhenDeleted,
};
pub use rollout::{AnalysisStep, BlueGreenStrategy, CanaryStep, CanaryStrategy, PauseStep, RolloutStrategy};
pub use status::{
    AbortKind, AbortReason, ActorCounts, ActorPoolStatus, AnalysisStatus, HandledCommand,
    MEASUREMENT_HISTORY, Measurement, MeasurementOutcome, MetricResult, PoolPhase,
};

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
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.strategy) || !has(self.strategy.canary) || self.strategy.canary.steps.all(s, !has(s.analysis) || !has(s.analysis.metrics) || (has(self.analysis) && s.analysis.metrics.all(m, self.analysis.metrics.exists(d, d.name == m))))",
     "message": "every metric a canary analysis step names must be defined in spec.analysis.metrics"}
]))]
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

    /// Where the pool's actors keep their state across moves and crashes. Default: handed over
    /// on planned moves only (OnMove).
    #[serde(default)]
    pub persistence: PersistenceSpec,
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
    /// With `whenFull: Block`, how long a sender waits for room: at most 10m. Default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "!self.matches('^([0-9]+(ms|s|m|h))+$') || duration(self) <= duration('10m')",
         "message": "mailbox.blockTimeout must be at most 10m"}
    ]))]
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
