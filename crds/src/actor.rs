//! `Actor`: one long-lived actor, hosted by exactly one live worker of its pool.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, DNS_LABEL_PATTERN, DURATION_PATTERN, EVERY_BOUNDS_RULE, SCHEDULE_RULE};

/// An Actor is one long-lived actor of a registered behaviour, run by a worker of its pool.
///
/// The operator places it on one live worker and records the placement in status; the worker
/// starts it with its config, restarts it per its restart policy and reports its runtime state.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "troupe.dev",
    version = "v1alpha1",
    kind = "Actor",
    namespaced,
    status = "ActorStatus",
    shortname = "act",
    category = "troupe",
    derive = "PartialEq",
    printcolumn(
        name = "Pool",
        type_ = "string",
        json_path = ".spec.pool",
        description = "The pool whose workers host this actor"
    ),
    printcolumn(
        name = "Behavior",
        type_ = "string",
        json_path = ".spec.behavior",
        description = "The registered actor type"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the actor is in its life"
    ),
    printcolumn(
        name = "Worker",
        type_ = "string",
        json_path = ".status.worker",
        description = "The worker pod hosting the actor"
    ),
    printcolumn(
        name = "Revision",
        type_ = "string",
        json_path = ".status.revision",
        description = "The pool revision of that worker"
    ),
    printcolumn(
        name = "Restarts",
        type_ = "integer",
        json_path = ".status.restarts",
        description = "Restarts of the actor"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.pool"
)]
#[serde(rename_all = "camelCase")]
pub struct ActorSpec {
    /// The ActorPool, in the same namespace, whose workers host this actor. It cannot be changed
    /// once set: delete and re-create the actor to move it to another pool.
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == oldSelf", "message": "spec.pool is immutable: delete and re-create the Actor to move it to another pool"}
    ]))]
    pub pool: String,

    /// The name of an actor type registered in the pool's worker image (for the default worker:
    /// echo, counter, scheduled, pipeline-stage, flaky). A name the worker does not know makes the
    /// actor Failed with reason UnknownBehavior.
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"))]
    pub behavior: String,

    /// Free-form configuration handed to the actor when it starts (an object, nested at most 64
    /// levels deep). A change restarts the actor with the new configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::free_form_object_schema")]
    pub config: Option<crate::ActorConfig>,

    /// Sends the actor a tick on a schedule: `every 30s` (units ms, s, m, h, d), a cron macro such
    /// as `@hourly`, or a cron expression with 5 to 7 fields (`0 */2 * * *`). Times are UTC. An
    /// `every` schedule is from 100ms to 366d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": SCHEDULE_RULE, "message": "schedule must be 'every <n><unit>' (units ms, s, m, h, d), a cron macro such as @hourly, or a cron expression of 5 to 7 fields such as '0 */2 * * *'"},
        {"rule": EVERY_BOUNDS_RULE, "message": "an 'every' schedule must be from 100ms to 366d"}
    ]))]
    pub schedule: Option<String>,

    /// Stops the actor and keeps it stopped (phase Paused) until set back to false. Messages sent
    /// to a paused actor are refused with 409.
    #[serde(default)]
    pub paused: bool,

    /// Change this value (any string, e.g. a timestamp) to deliver one tick to the actor now, as
    /// `kubectl troupe trigger` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub trigger: Option<String>,

    /// How the worker restarts the actor when it stops or fails.
    #[serde(default)]
    pub restart_policy: RestartPolicySpec,

    /// Pauses the actor after a run of consecutive failed messages or ticks, and says so in its
    /// status (condition CircuitOpen). Unset: no circuit breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerSpec>,

    /// Keeps an append-only journal of the actor's state changes in its pool's state store:
    /// every write of its state (each committed batch of messages with persistence mode
    /// EveryMessage, each checkpoint with Interval) adds an entry with the state, the epoch and
    /// the number of messages handled since the previous one. Read it with
    /// `kubectl troupe journal ACTOR`. Needs the pool's persistence mode Interval or
    /// EveryMessage; otherwise nothing is journaled and condition Journaled says why. Unset: no
    /// journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalSpec>,
}

/// How much of an actor's journal is kept (older entries are removed as new ones are written).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JournalSpec {
    /// The newest entries to keep: from 1 to 100000. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub keep: Option<i32>,

    /// Entries older than this are removed too: from 1m to 8760h (a year). Unset: by count only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "!self.matches('^([0-9]+(ms|s|m|h))+$') || (duration(self) >= duration('1m') && duration(self) <= duration('8760h'))",
         "message": "journal.keepFor must be from 1m to 8760h"}
    ]))]
    pub keep_for: Option<String>,
}

impl JournalSpec {
    /// Entries kept when `keep` is unset.
    pub const DEFAULT_KEEP: u32 = 1000;

    /// The number of entries to keep.
    pub fn keep(&self) -> u32 {
        self.keep
            .and_then(|k| u32::try_from(k).ok())
            .filter(|k| *k >= 1)
            .unwrap_or(Self::DEFAULT_KEEP)
    }

    /// The age past which entries are removed, if any (None also for a value the schema should
    /// have refused).
    pub fn keep_for(&self) -> Option<std::time::Duration> {
        self.keep_for
            .as_deref()
            .and_then(|d| crate::duration::parse_duration(d).ok())
    }
}

/// When an actor is restarted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RestartPolicy {
    /// Restart whenever the actor stops, whether it failed or finished.
    #[default]
    Always,
    /// Restart only when the actor failed (panicked or returned an error from start).
    OnFailure,
    /// Never restart: a failed actor stays Failed.
    Never,
}

/// How the worker restarts the actor, with limits so a crashing actor cannot spin.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.backoff) || !has(self.backoff.initial) || !has(self.backoff.max) || duration(self.backoff.initial) <= duration(self.backoff.max)",
     "message": "restartPolicy.backoff.initial must not exceed restartPolicy.backoff.max"}
]))]
pub struct RestartPolicySpec {
    /// Always, OnFailure or Never.
    #[serde(default)]
    pub policy: RestartPolicy,
    /// At most this many restarts within `window`; one more makes the actor Failed with reason
    /// RestartLimitExceeded.
    #[serde(default = "default_max_restarts")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_restarts: i32,
    /// The sliding window over which restarts are counted: from 1s to 24h.
    #[serde(default = "default_restart_window")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "!self.matches('^([0-9]+(ms|s|m|h))+$') || (duration(self) >= duration('1s') && duration(self) <= duration('24h'))",
         "message": "restartPolicy.window must be from 1s to 24h"}
    ]))]
    pub window: String,
    /// Exponential backoff between restarts.
    #[serde(default)]
    pub backoff: RestartBackoff,
}

impl Default for RestartPolicySpec {
    fn default() -> Self {
        Self {
            policy: RestartPolicy::default(),
            max_restarts: default_max_restarts(),
            window: default_restart_window(),
            backoff: RestartBackoff::default(),
        }
    }
}

fn default_max_restarts() -> i32 {
    5
}
fn default_restart_window() -> String {
    "10m".into()
}

/// Exponential backoff: the first restart waits `initial`, each next one twice as long, up to `max`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartBackoff {
    /// The delay before the first restart: from 10ms to 1h.
    #[serde(default = "default_backoff_initial")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "!self.matches('^([0-9]+(ms|s|m|h))+$') || (duration(self) >= duration('10ms') && duration(self) <= duration('1h'))",
         "message": "restartPolicy.backoff.initial must be from 10ms to 1h"}
    ]))]
    pub initial: String,
    /// The longest delay between two restarts: at most 1h.
    #[serde(default = "default_backoff_max")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "!self.matches('^([0-9]+(ms|s|m|h))+$') || duration(self) <= duration('1h')",
         "message": "restartPolicy.backoff.max must be at most 1h"}
    ]))]
    pub max: String,
}

impl Default for RestartBackoff {
    fn default() -> Self {
        Self {
            initial: default_backoff_initial(),
            max: default_backoff_max(),
        }
    }
}

fn default_backoff_initial() -> String {
    "1s".into()
}
fn default_backoff_max() -> String {
    "1m".into()
}

/// Pause the actor after N consecutive failures.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerSpec {
    /// How many consecutive failed messages or ticks open the circuit (pause the actor).
    #[schemars(range(min = 1, max = 10000))]
    pub consecutive_failures: i32,
}

/// Where an actor is in its life.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum ActorPhase {
    /// Not placed yet: no live worker of its pool, or the pool does not exist.
    #[default]
    Pending,
    /// Assigned to a worker, which has not picked it up yet.
    Placed,
    /// The worker is starting it (or restarting it after a backoff).
    Starting,
    /// Running and taking messages.
    Running,
    /// Stopped on purpose: `spec.paused`, or an open circuit breaker.
    Paused,
    /// Stopped and not restarted: restart policy, restart limit, or an unknown behaviour.
    Failed,
    /// Being moved to another worker (rollout, scale-down, rebalancing).
    Migrating,
}

impl Actor {
    /// The epoch of the actor's current (or, once released, last) assignment: the
    /// `troupe.dev/epoch` annotation. `None` when there is none or it is not a number.
    pub fn assignment_epoch(&self) -> Option<u64> {
        self.metadata
            .annotations
            .as_ref()?
            .get(crate::labels::EPOCH)?
            .parse()
            .ok()
    }

    /// Where the state of this assignment waits, as the operator wrote it with the assignment:
    /// the worker that stopped the actor and the epoch that ended there
    /// (`troupe.dev/handoff-from: <pod>/<epoch>`). `None` when absent or malformed.
    pub fn handoff_from_annotation(&self) -> Option<(&str, u64)> {
        let value = self
            .metadata
            .annotations
            .as_ref()?
            .get(crate::labels::HANDOFF_FROM)?;
        let (worker, epoch) = value.rsplit_once('/')?;
        Some((worker, epoch.parse().ok()?))
    }

    /// The epoch the status reports (`status.epoch`: the last claim, confirmation or
    /// placement written), if any.
    pub fn reported_epoch(&self) -> Option<u64> {
        self.status.as_ref()?.epoch.and_then(|e| u64::try_from(e).ok())
    }
}

impl ActorPhase {
    /// Every phase, in life order; used for counts by phase.
    pub const ALL: [ActorPhase; 7] = [
        ActorPhase::Pending,
        ActorPhase::Placed,
        ActorPhase::Starting,
        ActorPhase::Running,
        ActorPhase::Paused,
        ActorPhase::Failed,
        ActorPhase::Migrating,
    ];
}

/// What the operator and the worker observe of an actor. The operator owns the placement fields
/// (worker, revision); the worker owns the runtime fields. Both write with server-side apply under
/// their own field managers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorStatus {
    /// Pending, Placed, Starting, Running, Paused, Failed or Migrating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ActorPhase>,
    /// The worker pod the actor is placed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The pool revision (pod template hash) of that worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The epoch (fencing token) of the assignment this status describes: raised by the operator
    /// on every placement (annotation `troupe.dev/epoch`) and written here by the worker that
    /// runs the actor under it. A departure (phase Migrating) counts only with the worker and
    /// epoch of the assignment it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub epoch: Option<i64>,
    /// How many times the worker restarted the actor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<i32>,
    /// Messages and ticks the actor has handled since it was placed on its current worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_processed: Option<i64>,
    /// The last error the actor reported, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// When the actor last started on its worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions: Placed, Ready, CircuitOpen, and SpecValid for what the schema cannot check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
