//! The state store's rules in memory: for tests of the host, and for embedding the host without
//! a database. Nothing survives the process.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use chrono::Utc;
use serde_json::Value;

use super::{Forgotten, JournalEntry, JournalWrite, SWEEP_READ_MAX, StateRef, StateStore, StoreError};
use crate::host::ActorKey;

/// One actor's row.
#[derive(Clone, Debug)]
struct Row {
    uid: String,
    pool: String,
    epoch: u64,
    state: Option<Value>,
}

/// One journal entry and the pool of the Actor that wrote it.
#[derive(Clone, Debug)]
struct Entry {
    pool: String,
    entry: JournalEntry,
}

/// An in-memory [`StateStore`] with the same epoch rules as the PostgreSQL one.
#[derive(Default)]
pub struct MemoryStore {
    rows: Mutex<HashMap<ActorKey, Row>>,
    /// Each actor's journal, oldest first, and the last sequence number given.
    journals: Mutex<(HashMap<ActorKey, VecDeque<Entry>>, i64)>,
    /// While set, every call answers `Unavailable` (a store that is down).
    down: Mutex<Option<String>>,
}

impl MemoryStore {
    /// The stored state and epoch of `key`.
    pub fn get(&self, key: &ActorKey) -> Option<(u64, Option<Value>)> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        rows.get(key).map(|r| (r.epoch, r.state.clone()))
    }

    /// Makes the store answer `Unavailable` (Some) or work again (None).
    pub fn set_down(&self, why: Option<&str>) {
        *self.down.lock().unwrap_or_else(|e| e.into_inner()) = why.map(str::to_string);
    }

    fn append(&self, actor: &StateRef, epoch: u64, state: &Value, j: &JournalWrite) {
        let mut journals = self.journals.lock().unwrap_or_else(|e| e.into_inner());
        journals.1 += 1;
        let seq = journals.1;
        let now = Utc::now();
        let entries = journals.0.entry(actor.key.clone()).or_default();
        entries.push_back(Entry {
            pool: actor.pool.clone(),
            entry: JournalEntry {
                seq,
                uid: actor.uid.clone(),
                epoch,
                at: now,
                messages: j.messages,
                state: state.clone(),
            },
        });
        while entries.len() > j.keep as usize {
            entries.pop_front();
        }
        if let Some(age) = j.keep_for.and_then(|a| chrono::TimeDelta::from_std(a).ok()) {
            entries.retain(|e| now - e.entry.at <= age);
        }
    }

    fn check_up(&self) -> Result<(), StoreError> {
        match &*self.down.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(why) => Err(StoreError::Unavailable(why.clone())),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl StateStore for MemoryStore {
    async fn activate(
        &self,
        actor: &StateRef,
        epoch: u64,
        handed: Option<&Value>,
    ) -> Result<Option<Value>, StoreError> {
        self.check_up()?;
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let row = rows.entry(actor.key.clone()).or_insert_with(|| Row {
            uid: actor.uid.clone(),
            pool: actor.pool.clone(),
            epoch,
            state: None,
        });
        if row.uid != actor.uid {
            *row = Row {
                uid: actor.uid.clone(),
                pool: actor.pool.clone(),
                epoch,
                state: None,
            };
        }
        if row.epoch > epoch {
            return Err(StoreError::Stale {
                mine: epoch,
                stored: row.epoch,
            });
        }
        row.epoch = epoch;
        if let Some(state) = handed {
            row.state = Some(state.clone());
        }
        Ok(row.state.clone())
    }

    async fn save(
        &self,
        actor: &StateRef,
        epoch: u64,
        state: &Value,
        journal: Option<&JournalWrite>,
    ) -> Result<(), StoreError> {
        self.check_up()?;
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        match rows.get_mut(&actor.key) {
            Some(row) if row.uid == actor.uid && row.epoch == epoch => {
                row.state = Some(state.clone());
                if let Some(j) = journal {
                    self.append(actor, epoch, state, j);
                }
                Ok(())
            }
            Some(row) => Err(StoreError::Stale {
                mine: epoch,
                stored: row.epoch,
            }),
            // Never activated: a write without a fence is refused too.
            None => Err(StoreError::Stale {
                mine: epoch,
                stored: 0,
            }),
        }
    }

    async fn journal(&self, key: &ActorKey, limit: u32) -> Result<Vec<JournalEntry>, StoreError> {
        self.check_up()?;
        let journals = self.journals.lock().unwrap_or_else(|e| e.into_inner());
        Ok(journals
            .0
            .get(key)
            .map(|entries| {
                let newest = entries.iter().rev().take(limit as usize);
                newest.map(|e| e.entry.clone()).collect()
            })
            .unwrap_or_default())
    }

    async fn forget(&self, actor: &StateRef) -> Result<Forgotten, StoreError> {
        self.check_up()?;
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let mut forgotten = Forgotten::default();
        if rows.get(&actor.key).is_some_and(|r| r.uid == actor.uid) {
            rows.remove(&actor.key);
            forgotten.rows = 1;
        }
        let mut journals = self.journals.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entries) = journals.0.get_mut(&actor.key) {
            let before = entries.len();
            entries.retain(|e| e.entry.uid != actor.uid);
            forgotten.journal_entries = (before - entries.len()) as u64;
        }
        Ok(forgotten)
    }

    async fn stored(&self, namespace: &str, pool: &str) -> Result<Vec<StateRef>, StoreError> {
        self.check_up()?;
        let mut found = std::collections::BTreeSet::new();
        let of_pool = |key: &ActorKey, p: &str| key.namespace == namespace && p == pool;
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        for (key, row) in rows.iter().filter(|(k, r)| of_pool(k, &r.pool)) {
            found.insert((key.name.clone(), row.uid.clone()));
        }
        let journals = self.journals.lock().unwrap_or_else(|e| e.into_inner());
        for (key, entries) in &journals.0 {
            for e in entries.iter().filter(|e| of_pool(key, &e.pool)) {
                found.insert((key.name.clone(), e.entry.uid.clone()));
            }
        }
        Ok(found
            .into_iter()
            .take(SWEEP_READ_MAX as usize)
            .map(|(name, uid)| StateRef {
                key: ActorKey::new(namespace, name),
                uid,
                pool: pool.to_string(),
            })
            .collect())
    }
}
