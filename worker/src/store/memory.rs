//! The state store's rules in memory: for tests of the host, and for embedding the host without
//! a database. Nothing survives the process.

use std::{collections::HashMap, sync::Mutex};

use serde_json::Value;

use super::{StateRef, StateStore, StoreError};
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

    async fn save(&self, actor: &StateRef, epoch: u64, state: &Value) -> Result<(), StoreError> {
        self.check_up()?;
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        match rows.get_mut(&actor.key) {
            Some(row) if row.uid == actor.uid && row.epoch == epoch => {
                row.state = Some(state.clone());
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
}
