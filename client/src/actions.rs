//! The actions a person takes on pools and actors, shared by `kubectl troupe` and the console so
//! that both write exactly the same thing: rollout control is an annotation on the ActorPool
//! (`troupe.dev/promote` …, which the operator acts on and removes), an actor's pause, resume and
//! trigger are its `spec.paused` and `spec.trigger`. Each action also names its plain-kubectl
//! equivalent, which the console shows beside its button.
//!
//! Every write is a JSON merge patch with the caller's own client: their RBAC decides, and a
//! refusal comes back as [`ActionError`] with the API server's words.

use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;
use troupe_crds::{Actor, ActorPool, labels};

/// Rollout control of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolAction {
    Promote,
    Abort,
    Retry,
    Undo,
}

/// What can be done to one actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorAction {
    Pause,
    Resume,
    Trigger,
}

impl PoolAction {
    pub const ALL: [PoolAction; 4] = [Self::Promote, Self::Abort, Self::Retry, Self::Undo];

    /// The verb as typed after `kubectl troupe` (and in the console's URLs).
    pub fn verb(self) -> &'static str {
        match self {
            Self::Promote => "promote",
            Self::Abort => "abort",
            Self::Retry => "retry",
            Self::Undo => "undo",
        }
    }

    pub fn from_verb(verb: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.verb() == verb)
    }

    /// The annotation the operator acts on.
    pub fn annotation(self) -> &'static str {
        match self {
            Self::Promote => labels::PROMOTE,
            Self::Abort => labels::ABORT,
            Self::Retry => labels::RETRY,
            Self::Undo => labels::UNDO,
        }
    }

    /// What the operator does with it, in a sentence.
    pub fn explain(self) -> &'static str {
        match self {
            Self::Promote => {
                "Goes past the current pause or analysis step of a canary rollout, or switches a blue-green rollout now."
            }
            Self::Abort => {
                "Aborts the rollout in progress: every actor goes back to the stable revision at once."
            }
            Self::Retry => "Rolls an aborted revision out again from its first step.",
            Self::Undo => {
                "Puts the previous revision's pod template back into the spec, as kubectl rollout undo does; that starts a rollout of it."
            }
        }
    }

    /// The same action with the plugin.
    pub fn kubectl_troupe(self, ns: &str, pool: &str) -> String {
        format!("kubectl troupe {} {pool} -n {ns}", self.verb())
    }

    /// The same action with plain kubectl.
    pub fn kubectl(self, ns: &str, pool: &str) -> String {
        format!(
            "kubectl annotate actorpool {pool} -n {ns} --overwrite {}=now",
            self.annotation()
        )
    }
}

impl ActorAction {
    pub const ALL: [ActorAction; 3] = [Self::Pause, Self::Resume, Self::Trigger];

    pub fn verb(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Trigger => "trigger",
        }
    }

    pub fn from_verb(verb: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.verb() == verb)
    }

    pub fn explain(self) -> &'static str {
        match self {
            Self::Pause => {
                "Stops the actor and keeps it stopped (phase Paused) until resumed; messages sent to it meanwhile are refused with 409."
            }
            Self::Resume => "Starts a paused actor again.",
            Self::Trigger => "Delivers one tick to the actor now, as its schedule would.",
        }
    }

    /// The merge patch, `at` being the trigger's value (any new string triggers once).
    pub fn patch(self, at: Timestamp) -> serde_json::Value {
        match self {
            Self::Pause => json!({"spec": {"paused": true}}),
            Self::Resume => json!({"spec": {"paused": false}}),
            Self::Trigger => json!({"spec": {"trigger": at.to_string()}}),
        }
    }

    pub fn kubectl_troupe(self, ns: &str, actor: &str) -> String {
        format!("kubectl troupe {} {actor} -n {ns}", self.verb())
    }

    pub fn kubectl(self, ns: &str, actor: &str) -> String {
        let patch = match self {
            Self::Pause => r#"{"spec":{"paused":true}}"#.to_string(),
            Self::Resume => r#"{"spec":{"paused":false}}"#.to_string(),
            // Any value the field has not had triggers once: the time is the easy one.
            Self::Trigger => {
                return format!(
                    r#"kubectl patch actor {actor} -n {ns} --type=merge -p "{{\"spec\":{{\"trigger\":\"$(date -u +%FT%TZ)\"}}}}""#
                );
            }
        };
        format!("kubectl patch actor {actor} -n {ns} --type=merge -p '{patch}'")
    }
}

/// Why an action was not done, as the API server said it.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The API server answered with a status (403 from RBAC, 404, 409 …).
    #[error("{kind} {ns}/{name}: {message} (HTTP {code}{reason})", reason = if reason.is_empty() { String::new() } else { format!(", {reason}") })]
    Refused {
        kind: &'static str,
        ns: String,
        name: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// The API server could not be asked (connection, TLS, credentials).
    #[error("{kind} {ns}/{name}: {source}")]
    Unreachable {
        kind: &'static str,
        ns: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl ActionError {
    pub fn from_kube(kind: &'static str, ns: &str, name: &str, e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => Self::Refused {
                kind,
                ns: ns.into(),
                name: name.into(),
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            source => Self::Unreachable {
                kind,
                ns: ns.into(),
                name: name.into(),
                source,
            },
        }
    }

    /// The API server's HTTP status, when it answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            Self::Unreachable { .. } => None,
        }
    }
}

/// The field manager of every write, so `managedFields` says who did it.
pub const FIELD_MANAGER: &str = "kubectl-troupe";

/// Asks the operator for `action` on pool `ns/pool` (sets its annotation to the time now).
pub async fn pool_action(
    client: &Client,
    ns: &str,
    pool: &str,
    action: PoolAction,
) -> Result<(), ActionError> {
    let api: Api<ActorPool> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"annotations": {action.annotation(): Timestamp::now().to_string()}}});
    // A merge patch of a pool that does not exist is a 404 too: no read first, which the
    // user's RBAC might not even allow while it allows the patch.
    api.patch(pool, &params(), &Patch::Merge(patch))
        .await
        .map(drop)
        .map_err(|e| ActionError::from_kube("actorpool", ns, pool, e))
}

/// Pauses, resumes or triggers actor `ns/actor`.
pub async fn actor_action(
    client: &Client,
    ns: &str,
    actor: &str,
    action: ActorAction,
) -> Result<(), ActionError> {
    let api: Api<Actor> = Api::namespaced(client.clone(), ns);
    api.patch(actor, &params(), &Patch::Merge(action.patch(Timestamp::now())))
        .await
        .map(drop)
        .map_err(|e| ActionError::from_kube("actor", ns, actor, e))
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "actions_tests.rs"]
mod tests;
