//! Actors: the rows of the actors table and everything the actor page shows. An actor's config
//! is shown with the values of credential-like keys hidden (see [`shown_config`]).

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::{Map, Value};
use troupe_crds::{Actor, ActorPhase, RestartPolicy, common::Condition};

/// One actor in a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorRow {
    pub namespace: String,
    pub name: String,
    pub pool: String,
    pub behavior: String,
    pub phase: Option<ActorPhase>,
    pub worker: String,
    pub revision: String,
    pub restarts: i32,
    pub messages: i64,
}

impl ActorRow {
    pub fn of(a: &Actor) -> ActorRow {
        let s = a.status.clone().unwrap_or_default();
        ActorRow {
            namespace: a.namespace().unwrap_or_default(),
            name: a.name_any(),
            pool: a.spec.pool.clone(),
            behavior: a.spec.behavior.clone(),
            phase: s.phase,
            worker: s.worker.unwrap_or_default(),
            revision: s.revision.unwrap_or_default(),
            restarts: s.restarts.unwrap_or(0),
            messages: s.messages_processed.unwrap_or(0),
        }
    }
}

/// Everything the actor page shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ActorDetail {
    pub row: ActorRow,
    pub paused: bool,
    pub schedule: Option<String>,
    pub restart_policy: String,
    pub circuit_breaker: Option<i32>,
    pub last_error: Option<String>,
    /// The epoch the status reports, and the one of the current assignment (annotation).
    pub epoch: Option<i64>,
    pub assignment_epoch: Option<u64>,
    pub started: Option<Timestamp>,
    pub last_transition: Option<Timestamp>,
    /// Whether the status describes the current spec (observedGeneration = generation).
    pub up_to_date: bool,
    pub conditions: Vec<Condition>,
    /// The config as pretty JSON with credential-like values hidden, or why it cannot be read.
    pub config: Result<Option<String>, String>,
}

impl ActorDetail {
    pub fn of(a: &Actor) -> ActorDetail {
        let s = a.status.clone().unwrap_or_default();
        let rp = &a.spec.restart_policy;
        let policy = match rp.policy {
            RestartPolicy::Always => "Always",
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Never => "Never",
        };
        ActorDetail {
            row: ActorRow::of(a),
            paused: a.spec.paused,
            schedule: a.spec.schedule.clone(),
            restart_policy: format!(
                "{policy}, at most {} restarts in {}, backoff {} to {}",
                rp.max_restarts, rp.window, rp.backoff.initial, rp.backoff.max
            ),
            circuit_breaker: a.spec.circuit_breaker.as_ref().map(|c| c.consecutive_failures),
            last_error: s.last_error.clone(),
            epoch: s.epoch,
            assignment_epoch: a.assignment_epoch(),
            started: s.started_at.as_ref().map(|t| t.0),
            last_transition: s.last_transition_time.as_ref().map(|t| t.0),
            up_to_date: s.observed_generation.is_some() && s.observed_generation == a.metadata.generation,
            conditions: s.conditions.clone(),
            config: match &a.spec.config {
                None => Ok(None),
                Some(c) => c.parse().map(|map| Some(shown_config(map))),
            },
        }
    }
}

/// What stands in for a hidden value.
pub const HIDDEN: &str = "(hidden)";

/// Words in a key that mark its value as a credential.
const CREDENTIAL_WORDS: [&str; 8] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "credential",
    "privatekey",
];

fn is_credential_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    CREDENTIAL_WORDS.iter().any(|w| k.contains(w)) || k.replace('_', "").contains("privatekey")
}

/// The config as pretty JSON, every value under a credential-like key (password, token,
/// secret, apiKey, …, at any depth) replaced by [`HIDDEN`]. Troupe has no way to put a Secret's
/// value into an actor's config (the worker reads Secrets itself), and the console never reads
/// Secrets; but people paste credentials into configs, and a page on a shared screen is not
/// the place to show them.
pub fn shown_config(map: Map<String, Value>) -> String {
    fn hide(v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, v)| {
                        let v = if is_credential_key(&k) {
                            Value::String(HIDDEN.into())
                        } else {
                            hide(v)
                        };
                        (k, v)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(hide).collect()),
            other => other,
        }
    }
    serde_json::to_string_pretty(&hide(Value::Object(map))).unwrap_or_default()
}
