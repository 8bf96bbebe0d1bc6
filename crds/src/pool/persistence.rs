//! `spec.persistence`: where a pool's actors keep their state, and how often it is written.
//!
//! The worker reads the mode from its env (`TROUPE_PERSISTENCE`, `TROUPE_CHECKPOINT_EVERY`) and
//! the store's address from the Secret the pool names (`TROUPE_STORE_DSN`, never in the spec,
//! status or logs), with the store's CA from the same Secret (`TROUPE_STORE_CA`). See
//! docs/durability.md.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a pool's actors keep their state between activations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(self.mode == 'Interval' || self.mode == 'EveryMessage') || has(self.storeSecretRef)",
     "message": "persistence modes Interval and EveryMessage need storeSecretRef: the Secret holding the PostgreSQL DSN"},
    {"rule": "!has(self.checkpointEvery) || self.mode == 'Interval'",
     "message": "persistence.checkpointEvery only applies when persistence.mode is Interval"},
    {"rule": "!has(self.whenDeleted) || self.mode == 'Interval' || self.mode == 'EveryMessage'",
     "message": "persistence.whenDeleted only applies when persistence.mode is Interval or EveryMessage (the modes with a store)"}
]))]
pub struct PersistenceSpec {
    /// None: an actor starts from its config after every move or crash. OnMove (the default):
    /// planned moves (rebalance, rollout steps, rollback) hand the state to the next worker; a
    /// crash loses it; no store needed. Interval: also written to the store every
    /// `checkpointEvery` messages, so a crash loses at most that many messages' changes.
    /// EveryMessage: written through; a tell is answered 202 only after its change is committed.
    #[serde(default)]
    pub mode: PersistenceMode,

    /// With mode Interval: write the state after this many handled messages. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub checkpoint_every: Option<i32>,

    /// The Secret (in the pool's namespace) whose key holds the PostgreSQL connection string,
    /// e.g. `postgres://troupe:…@db:5432/troupe`. Needed by Interval and EveryMessage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_secret_ref: Option<StoreSecretRef>,

    /// What happens to a deleted Actor's stored state and journal. Delete (the default): the
    /// worker that ran it removes them when it sees the Actor go, and each worker sweeps its
    /// pool's rows of Actors that no longer exist every hour (for Actors deleted while no worker
    /// ran them). Retain: they stay (`kubectl troupe journal NAME --all` still reads the journal)
    /// until removed by hand. An Actor created again under the same name starts afresh either
    /// way. Only with modes Interval and EveryMessage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_deleted: Option<WhenDeleted>,
}

/// What happens to a deleted Actor's stored state (`persistence.whenDeleted`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WhenDeleted {
    /// Removed with the Actor.
    #[default]
    Delete,
    /// Kept until removed by hand.
    Retain,
}

impl WhenDeleted {
    /// The name in the spec and in the worker's env (`TROUPE_WHEN_DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            WhenDeleted::Delete => "Delete",
            WhenDeleted::Retain => "Retain",
        }
    }
}

impl std::str::FromStr for WhenDeleted {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [WhenDeleted::Delete, WhenDeleted::Retain]
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a whenDeleted policy (Delete, Retain)"))
    }
}

/// How often an actor's state is written, and where.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PersistenceMode {
    /// No state is carried: every activation starts from the actor's config.
    None,
    /// Handed to the next worker on planned moves only; no store.
    #[default]
    OnMove,
    /// Checkpointed to the store every `checkpointEvery` messages, and handed over on moves.
    Interval,
    /// Written to the store after every message, before the message is acknowledged.
    EveryMessage,
}

impl PersistenceMode {
    /// The name in the spec and in the worker's env.
    pub fn as_str(self) -> &'static str {
        match self {
            PersistenceMode::None => "None",
            PersistenceMode::OnMove => "OnMove",
            PersistenceMode::Interval => "Interval",
            PersistenceMode::EveryMessage => "EveryMessage",
        }
    }

    /// Whether the mode writes to a store.
    pub fn uses_store(self) -> bool {
        matches!(self, PersistenceMode::Interval | PersistenceMode::EveryMessage)
    }
}

impl std::str::FromStr for PersistenceMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [
            PersistenceMode::None,
            PersistenceMode::OnMove,
            PersistenceMode::Interval,
            PersistenceMode::EveryMessage,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| format!("{s:?} is not a persistence mode (None, OnMove, Interval, EveryMessage)"))
    }
}

/// A key of a Secret in the pool's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreSecretRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key holding the connection string. Default `dsn`. It may name its TLS settings as
    /// libpq reads them: `sslmode` (disable, prefer, require, verify-ca, verify-full) and
    /// `sslrootcert` (a file in the worker's container, or `system`).
    #[serde(default = "default_dsn_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// The key holding the CA certificate (PEM) that the store's server certificate must chain
    /// to. When unset, the key `ca.crt` is used if the Secret has it; when set, the key must
    /// exist. With a CA, a connection string that names no `sslmode` is `verify-full`; without
    /// one, it is `prefer` (the connection is then neither sure to be encrypted nor verified,
    /// and the worker warns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ca_key: Option<String>,
    /// A Secret in the pool's namespace holding the client certificate the workers present to a
    /// store that authenticates clients by certificate (`pg_hba.conf` method `cert`, or
    /// `clientcert=verify-ca|verify-full`): its keys `tls.crt` and `tls.key` (unencrypted), as a
    /// `kubernetes.io/tls` Secret or cert-manager's Certificate has them. Both keys must exist.
    /// Unset: no client certificate, unless the connection string names `sslcert` and `sslkey`
    /// files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub client_cert_secret: Option<String>,
}

/// The Secret's key of the store's CA when `caKey` is unset: the name cert-manager and
/// `kubernetes.io/tls` Secrets use.
pub const DEFAULT_CA_KEY: &str = "ca.crt";

fn default_dsn_key() -> String {
    "dsn".into()
}

/// Messages between checkpoints when `checkpointEvery` is unset.
pub const DEFAULT_CHECKPOINT_EVERY: i32 = 100;
