//! The state store's rules in memory: for tests of the host, and for embedding the host without
//! a database. Nothing survives the process.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use chrono::Utc;
use serde_json::Value;

use super::{JournalEntry, JournalWrite, StateRef, StateStore, StoreError};
use crate::host::ActorKey;

/// One actor's row.
#[derive(Clone, Debug)]
struct Row {
    uid: String,
    epoch: u64,
    state: Option<Value>,
}

/// An in-memory [`StateStore`] with the same epoch rules as the PostgreSQL one.
#[derive(Default)]
pub struct MemoryStore {
    rows: Mutex<HashMap<ActorKey, Row>>,
    /// Each actor's journal, oldest first, and the last sequence number given.
    journals: Mutex<(HashMap<ActorKey, VecDeque<JournalEntry>>, i64)>,
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
        entries.push_back(JournalEntry {
            seq,
            uid: actor.uid.clone(),
            epoch,
            at: now,
            messages: j.messages,
            state: state.clone(),
        });
        while entries.len() > j.keep as usize {
            entries.pop_front();
        }
        if let Some(age) = j.keep_for.and_then(|a| chrono::TimeDelta::from_std(a).ok()) {
            entries.retain(|e| now - e.at <= age);
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
            epoch,
            state: None,
        });
        if row.uid != actor.uid {
            *row = Row {
                uid: actor.uid.clone(),
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
            .map(|entries| entries.iter().rev().take(limit as usize).cloned().collect())
            .unwrap_or_default())
    }
}
