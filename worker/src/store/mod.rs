//! Where actors' state is persisted (a pool's `persistence` modes Interval and EveryMessage),
//! fenced by the activation's epoch.
//!
//! An activation first takes the actor's row for its epoch ([`StateStore::activate`]); from then
//! on the store refuses any write under an older epoch ([`StoreError::Stale`]). So a worker that
//! was paused past its lease, or cut off, and wakes up in the middle of a message can never
//! overwrite the state of the activation that replaced it: the actor that tried becomes `Failed`
//! with reason `StaleEpoch`. The lease fence (docs/architecture.md) stops such a worker before
//! its next message; this is the second line, at the store, for the message it was already in.
//!
//! [`postgres::PgStore`] is the store (over TLS as its connection string says: [`dsn`], [`tls`]);
//! [`memory::MemoryStore`] keeps the same rules in memory (tests, embedding without a database).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::host::ActorKey;

pub mod client_cert;
pub mod dsn;
pub mod memory;
pub mod postgres;
pub mod tls;

/// Which object an actor's row belongs to: its key and its Actor's uid, so that an Actor deleted
/// and created again under the same name (its epochs start over) starts afresh rather than being
/// refused as stale.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StateRef {
    pub key: ActorKey,
    pub uid: String,
    /// The Actor's pool: whose workers sweep the row once the Actor is gone
    /// (`persistence.whenDeleted`).
    pub pool: String,
}

/// Why the store did not take a write or an activation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A newer activation of the actor took its row: this one must stop.
    #[error(
        "a newer activation (epoch {stored}) owns the actor's state; this one (epoch {mine}) may not write it"
    )]
    Stale { mine: u64, stored: u64 },
    /// The store did not answer (down, unreachable, timed out); the operation may be retried.
    #[error("the state store is unavailable: {0}")]
    Unavailable(String),
}

/// An actor state store with epoch fencing.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// Takes the actor's row for `epoch`: from now on writes under an older epoch are refused.
    /// With `handed` (the state the previous worker handed over on a planned move, newer than
    /// any checkpoint), writes it as the state; otherwise returns the stored state, if any.
    /// Refused with [`StoreError::Stale`] when a newer epoch holds the row already.
    async fn activate(
        &self,
        actor: &StateRef,
        epoch: u64,
        handed: Option<&Value>,
    ) -> Result<Option<Value>, StoreError>;

    /// Writes `state` under `epoch`; refused with [`StoreError::Stale`] when a newer activation
    /// took the row since. With `journal`, also appends the state to the actor's journal in the
    /// same transaction (an entry only for a write that landed) and removes the entries its
    /// policy no longer keeps.
    async fn save(
        &self,
        actor: &StateRef,
        epoch: u64,
        state: &Value,
        journal: Option<&JournalWrite>,
    ) -> Result<(), StoreError>;

    /// The newest entries (at most `limit`) of the actor's journal, newest first: those of
    /// every Actor that had its name (each entry names its uid).
    async fn journal(&self, key: &ActorKey, limit: u32) -> Result<Vec<JournalEntry>, StoreError>;

    /// Removes the state and the journal of `actor` (that Actor object: a row or an entry of
    /// another uid, an Actor of the same name created since, is left alone).
    async fn forget(&self, actor: &StateRef) -> Result<Forgotten, StoreError>;

    /// Every Actor object of `pool` in `namespace` that has a row or journal entries (at most
    /// [`SWEEP_READ_MAX`]).
    async fn stored(&self, namespace: &str, pool: &str) -> Result<Vec<StateRef>, StoreError>;
}

/// What [`StateStore::forget`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// The state row (0 or 1).
    pub rows: u64,
    pub journal_entries: u64,
}

/// The most Actors one sweep reads (the next sweep takes the rest).
pub const SWEEP_READ_MAX: u32 = 10_000;

/// What a journaled write adds (an Actor's `spec.journal`).
#[derive(Clone, Debug, PartialEq)]
pub struct JournalWrite {
    /// Messages and ticks handled since the previous write.
    pub messages: u32,
    /// The newest entries to keep.
    pub keep: u32,
    /// Entries older than this are removed.
    pub keep_for: Option<Duration>,
}

/// One entry of an actor's journal: its state after a write.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// Increases with every entry (of any actor): the order of the entries.
    pub seq: i64,
    /// The Actor object the entry is of.
    pub uid: String,
    /// The activation that wrote it.
    pub epoch: u64,
    /// When it was committed.
    pub at: DateTime<Utc>,
    /// Messages and ticks handled since the previous entry.
    pub messages: u32,
    pub state: Value,
}

/// The most entries one read returns.
pub const JOURNAL_READ_MAX: u32 = 1000;
