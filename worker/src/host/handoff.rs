//! State handed over on a planned move (issue 13): when an actor leaves this worker (unassigned:
//! a rebalance, a canary step, a rollback, a scale-in), its behaviour's snapshot — taken after its
//! last message, once it has stopped — waits here for the worker that runs it next, which asks for
//! it with the epoch that ended, and restores it before its first message.
//!
//! Kept in memory, bounded: a state larger than [`MAX_STATE_BYTES`] is not kept (the actor starts
//! from its config on the next worker, and the worker says so); at most [`MAX_ENTRIES`] wait at
//! once (the oldest goes first) and each for at most [`TTL`] (a move is claimed within seconds;
//! a state nobody came for is dropped). A crash loses them: surviving crashes is the job of the
//! persistent modes.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use serde_json::Value;

use super::ActorKey;

/// The largest state handed over: 1 MiB of JSON, the worker API's message limit, so that a
/// state always fits in one answer of the handoff endpoint.
pub const MAX_STATE_BYTES: usize = 1 << 20;
/// How many states may wait at once on one worker (a drain of a full worker hands over all its
/// actors at once).
pub const MAX_ENTRIES: usize = 10_000;
/// How long a state waits for the next worker.
pub const TTL: Duration = Duration::from_secs(300);

/// Who ran an actor before this assignment, as the Actor's status says when it is assigned
/// here: the worker and the epoch of the assignment that ended there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousHolder {
    pub worker: String,
    pub epoch: u64,
    /// The actor's pool: its state is asked for only from a worker of that pool.
    pub pool: String,
}

/// A state handed over, and when the worker it left stopped taking messages for the actor (the
/// start of the move as the actor's senders see it; wall-clock time, so the gap measured on the
/// next worker includes the two machines' clock difference). `stopped_at` is None when the
/// worker that handed it over did not say.
#[derive(Clone, Debug, PartialEq)]
pub struct Handoff {
    pub state: Value,
    pub stopped_at: Option<SystemTime>,
}

/// Where a worker gets the state of an actor it now runs from the worker that ran it before.
#[async_trait::async_trait]
pub trait HandoffSource: Send + Sync {
    /// The state `previous` handed over for `key` when its assignment `previous.epoch` ended
    /// there; `None` when there is none (stateless, too large, expired, or that worker is gone).
    async fn fetch(&self, key: &ActorKey, previous: &PreviousHolder) -> Option<Handoff>;
}

struct Handed {
    epoch: u64,
    state: Value,
    stopped_at: SystemTime,
    at: Instant,
}

/// The states this worker handed over and that are not yet taken.
#[derive(Default)]
pub struct HandoffStore {
    entries: Mutex<HashMap<ActorKey, Handed>>,
}

impl HandoffStore {
    /// Keeps `state`, the actor's state when its assignment `epoch` ended here, replacing any
    /// older one. Refused (and said why) when it is too large.
    pub fn put(&self, key: ActorKey, epoch: u64, state: Value, stopped_at: SystemTime) -> Result<(), String> {
        let size = serde_json::to_vec(&state).map(|v| v.len()).unwrap_or(usize::MAX);
        if size > MAX_STATE_BYTES {
            return Err(format!(
                "the state is {size} bytes, more than the {MAX_STATE_BYTES} a move carries"
            ));
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Expired states are dropped when room is needed (`take` never hands one over).
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, h| now.duration_since(h.at) < TTL);
        }
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            let oldest = entries.iter().min_by_key(|(_, h)| h.at).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                entries.remove(&k);
            }
        }
        entries.insert(
            key,
            Handed {
                epoch,
                state,
                stopped_at,
                at: now,
            },
        );
        Ok(())
    }

    /// Hands the state over once: only for the epoch it was kept for (a state of an earlier
    /// assignment is not the one the asker must continue from) and while it has not expired.
    pub fn take(&self, key: &ActorKey, epoch: u64) -> Option<Handoff> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some(h) if h.epoch == epoch && h.at.elapsed() < TTL => entries.remove(key).map(|h| Handoff {
                state: h.state,
                stopped_at: Some(h.stopped_at),
            }),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(n: &str) -> ActorKey {
        ActorKey::new("ns", n)
    }

    #[test]
    fn a_state_is_handed_over_once_and_only_for_the_epoch_that_ended() {
        let store = HandoffStore::default();
        store
            .put(key("a"), 4, json!({"count": 7}), SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(
            store.take(&key("a"), 3),
            None,
            "an older epoch's asker gets nothing"
        );
        assert_eq!(
            store.take(&key("a"), 4).map(|h| h.state),
            Some(json!({"count": 7}))
        );
        assert_eq!(store.take(&key("a"), 4), None, "taken once");
    }

    #[test]
    fn a_later_epoch_replaces_the_state_kept_for_an_earlier_one() {
        let store = HandoffStore::default();
        store.put(key("a"), 1, json!(1), SystemTime::UNIX_EPOCH).unwrap();
        store.put(key("a"), 2, json!(2), SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(store.take(&key("a"), 1), None);
        assert_eq!(store.take(&key("a"), 2).map(|h| h.state), Some(json!(2)));
    }

    #[test]
    fn a_state_larger_than_a_message_is_refused_and_says_its_size() {
        let store = HandoffStore::default();
        let big = json!("x".repeat(MAX_STATE_BYTES));
        let err = store.put(key("a"), 1, big, SystemTime::UNIX_EPOCH).unwrap_err();
        assert!(err.contains("more than the 1048576"), "{err}");
        assert!(store.is_empty());
    }

    #[test]
    fn when_full_the_oldest_state_goes_first() {
        let store = HandoffStore::default();
        for i in 0..MAX_ENTRIES {
            store
                .put(key(&format!("a{i}")), 1, json!(i), SystemTime::UNIX_EPOCH)
                .unwrap();
        }
        store
            .put(key("newest"), 1, json!("n"), SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(store.len(), MAX_ENTRIES);
        assert_eq!(store.take(&key("a0"), 1), None, "the oldest was dropped");
        assert_eq!(store.take(&key("newest"), 1).map(|h| h.state), Some(json!("n")));
    }
}
