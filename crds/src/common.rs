//! Names and schema pieces shared by both kinds: the API group, well-known labels, the patterns
//! that the schema enforces, and the schema of an embedded pod template.

use schemars::{Schema, SchemaGenerator, json_schema};

/// The API group of every Troupe kind.
pub const GROUP: &str = "troupe.dev";
/// The API version of every Troupe kind.
pub const VERSION: &str = "v1alpha1";

/// Labels and annotations Troupe sets or reads. Keep them stable: users select on them.
pub mod labels {
    /// The pool a worker pod, Deployment or Lease belongs to.
    pub const POOL: &str = "troupe.dev/pool";
    /// The pool revision (hash of the pod template) a worker runs.
    pub const REVISION: &str = "troupe.dev/revision";
    /// On an Actor: the worker pod it is placed on. Workers watch only the Actors carrying their
    /// own pod name here.
    pub const WORKER: &str = "troupe.dev/worker";
    /// On an Actor: the epoch (fencing token) of its current assignment, a decimal number the
    /// operator raises on every placement and writes together with the `WORKER` label. The
    /// worker runs the actor under this epoch, says so in `status.epoch`, and confirms a
    /// departure with it; anything the actor writes elsewhere can carry it so that a stale
    /// activation is refused.
    pub const EPOCH: &str = "troupe.dev/epoch";
    /// On an Actor the operator took off a live worker: that worker's pod name, until the actor
    /// is assigned again. The worker confirms the stop (phase Migrating); a worker process that
    /// restarted under the same pod name never hosted the actor, so after each full read of its
    /// assignments it lists the actors released from it and confirms the ones it does not host.
    pub const RELEASED_FROM: &str = "troupe.dev/released-from";
    /// On an Actor assigned right after a planned move: `<pod>/<epoch>`, the worker that stopped
    /// it (its departure confirmed, phase Migrating) and the epoch that ended there. The new
    /// worker asks that worker for the state it handed over before the actor's first message.
    /// Written by the operator with the assignment, removed by every other placement write.
    pub const HANDOFF_FROM: &str = "troupe.dev/handoff-from";
    /// On a worker's Lease: the worker is leaving (SIGTERM: a scale-in, a rollout, a node
    /// drain). It still runs its actors and hands each over when moved; the operator places
    /// nothing new on it and moves its actors to the pool's other workers with planned moves,
    /// so that none is stopped mid-message and each keeps its state. The value is when the
    /// worker started leaving (RFC 3339).
    pub const LEAVING: &str = "troupe.dev/leaving";
    /// On an Actor, `manual`: the operator leaves its placement alone; the `WORKER` label set by
    /// hand decides where it runs (like a pod's nodeName). For debugging and tests.
    pub const PLACEMENT: &str = "troupe.dev/placement";
    /// On an ActorPool (any value): go past the current pause or analysis step of a canary, or
    /// switch a blue-green rollout now. The operator removes it once acted on.
    pub const PROMOTE: &str = "troupe.dev/promote";
    /// On an ActorPool (any value): abort the rollout in progress; every actor goes back to the
    /// stable revision.
    pub const ABORT: &str = "troupe.dev/abort";
    /// On an ActorPool (any value): roll an aborted revision out again from its first step.
    pub const RETRY: &str = "troupe.dev/retry";
    /// On an ActorPool (any value): put the template before the current one back into the spec,
    /// as `kubectl rollout undo` does: the stable revision's during or after an aborted rollout,
    /// else the previous stable revision's.
    pub const UNDO: &str = "troupe.dev/undo";
    /// On a worker Deployment: the user's pod template of its revision, as JSON (for undo).
    pub const TEMPLATE: &str = "troupe.dev/template";
    /// Marks objects managed by Troupe.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// The value of [`MANAGED_BY`].
    pub const MANAGER: &str = "troupe-operator";
}

/// A Kubernetes object name usable as a label value (DNS-1123 label).
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A duration as Go and Kubernetes write them: one or more number+unit pairs, e.g. `30s`, `1m30s`,
/// `500ms`, `2h`. Units: ms, s, m, h.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// An actor schedule: `every <n><unit>` (units ms, s, m, h, d), a cron macro (`@hourly`, `@daily`,
/// `@weekly`, `@monthly`, `@yearly`), or a cron expression of 5 to 7 space-separated fields.
pub const SCHEDULE_PATTERN: &str = r"^(every [1-9][0-9]{0,8}(ms|s|m|h|d)|@(hourly|daily|weekly|monthly|yearly|annually)|[0-9*?/,LW#A-Za-z-]+( +[0-9*?/,LW#A-Za-z-]+){4,6})$";

/// The CEL rule checking [`SCHEDULE_PATTERN`]: a CEL rule (unlike a bare `pattern`) lets the API
/// server answer with a message a person can act on.
pub const SCHEDULE_RULE: &str = r"self.matches('^(every [1-9][0-9]{0,8}(ms|s|m|h|d)|@(hourly|daily|weekly|monthly|yearly|annually)|[0-9*?/,LW#A-Za-z-]+( +[0-9*?/,LW#A-Za-z-]+){4,6})$')";

/// The CEL rule bounding an `every` schedule to 100ms–366d: faster ticks would keep the actor
/// from its messages; slower ones are a mistake (a cron expression says "yearly"). Counted in
/// integers, so that no number in the pattern can overflow a CEL duration.
pub const EVERY_BOUNDS_RULE: &str = "!self.matches('^every [1-9][0-9]{0,8}(ms|s|m|h|d)$') || (self.endsWith('ms') ? int(self.substring(6, size(self) - 2)) >= 100 : self.endsWith('s') ? int(self.substring(6, size(self) - 1)) <= 31622400 : self.endsWith('m') ? int(self.substring(6, size(self) - 1)) <= 527040 : self.endsWith('h') ? int(self.substring(6, size(self) - 1)) <= 8784 : int(self.substring(6, size(self) - 1)) <= 366)";

/// The schema of an embedded pod template.
///
/// The full PodTemplateSpec schema is several hundred kilobytes; embedded verbatim it would make
/// the CRD too large for client-side `kubectl apply` (262 KiB annotation limit). So, like many
/// operators, Troupe checks the parts it relies on (at least one container, each with a name and
/// an image) and preserves the rest as given; the Deployment built from it is validated by the API
/// server when the operator applies it.
pub fn pod_template_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "description": "The pod template of the pool's workers, as in a Deployment: the worker image, its command, env, resources, probes and so on. A change to it is a new revision and starts a rollout.",
        "required": ["spec"],
        "properties": {
            "metadata": {
                "type": "object",
                "description": "Labels and annotations added to every worker pod.",
                "properties": {
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            },
            "spec": {
                "type": "object",
                "description": "The worker pod's spec (core/v1 PodSpec).",
                "required": ["containers"],
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "containers": {
                        "type": "array",
                        "description": "The pod's containers; the first one is the worker.",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["name", "image"],
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {
                                "name": {"type": "string", "minLength": 1, "maxLength": 63},
                                "image": {"type": "string", "minLength": 1}
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The schema of free-form actor configuration: any JSON object, kept as given.
pub fn free_form_object_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "description": "Free-form configuration handed to the actor when it starts. At most 64 top-level keys; the whole Actor must stay under the API server's 1.5 MiB object limit.",
        "maxProperties": 64,
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// A standard condition type, `metav1.Condition`, re-exported so users of this crate need not
/// depend on k8s-openapi for it.
pub type Condition = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// A condition of `type_`: status `True` when `ok`, observed at `generation`, transitioned `now`.
pub fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: k8s_openapi::jiff::Timestamp,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
    }
}

/// Sets `new` in `conditions`, replacing the condition of its type. The Kubernetes convention:
/// `lastTransitionTime` changes only when the status does, so a new reason or message on the
/// same status keeps the time of the last real transition.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

#[cfg(test)]
mod condition_tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_stays_and_gets_a_new_one_when_it_changes() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            condition("Available", true, "Ready", "3 workers", Some(1), at(0)),
        );
        set_condition(
            &mut conditions,
            condition("Available", true, "Ready", "4 workers", Some(2), at(10)),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].message, "4 workers");
        assert_eq!(conditions[0].observed_generation, Some(2));
        assert_eq!(
            conditions[0].last_transition_time.0,
            at(0),
            "same status: no transition"
        );
        set_condition(
            &mut conditions,
            condition("Available", false, "Missing", "0 workers", Some(2), at(20)),
        );
        assert_eq!(conditions[0].last_transition_time.0, at(20));
        assert_eq!(conditions[0].status, "False");
        set_condition(
            &mut conditions,
            condition("Progressing", true, "Idle", "", None, at(30)),
        );
        assert_eq!(conditions.len(), 2, "other types are kept");
    }
}
