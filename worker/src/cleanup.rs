//! What a deleted Actor leaves in the state store, removed when its pool says
//! `persistence.whenDeleted: Delete` (the default).
//!
//! Two ways, so that nothing depends on one worker being up at the right moment:
//! - the worker that ran the Actor removes its row and journal within seconds of its watch
//!   seeing it go ([`Cleanup::gone_from_here`]), once a list of the namespace's Actors says that
//!   the object no longer exists. A watch event cannot tell: an Actor that moved to another
//!   worker leaves a label-filtered watch with a Delete event carrying its previous content, just
//!   as a deleted one does. One list checks every Actor that left in a few seconds;
//! - every worker of the pool sweeps, at its start and then every [`SWEEP_EVERY`], the rows of
//!   its pool whose Actor object no longer exists ([`Cleanup::sweep`]): those deleted while no
//!   worker ran them, or while the store was down.
//!
//! A row belongs to one Actor object (its uid): an Actor created again under the same name has
//! a uid of its own, so neither way can remove the new Actor's state.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use kube::{Api, ResourceExt, api::ListParams};
use troupe_crds::Actor;

use crate::{
    host::ActorKey,
    store::{StateRef, StateStore},
};

/// How often a worker sweeps its pool's rows of deleted Actors.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// How often the Actors that left this worker are checked for deletion (when some did).
pub const CHECK_LEFT_EVERY: Duration = Duration::from_secs(5);

/// Removes deleted Actors' state from one pool's store.
pub struct Cleanup {
    store: Arc<dyn StateStore>,
    namespace: String,
    pool: String,
    /// Actors that left this worker since the last check: moved away or deleted.
    left: Mutex<Vec<StateRef>>,
}

impl Cleanup {
    pub fn new(store: Arc<dyn StateStore>, namespace: &str, pool: &str) -> Arc<Cleanup> {
        Arc::new(Cleanup {
            store,
            namespace: namespace.to_string(),
            pool: pool.to_string(),
            left: Mutex::default(),
        })
    }

    /// An Actor that left this worker (after it stopped here): checked at the next round, and
    /// its state removed if the Actor object is gone.
    pub fn gone_from_here(&self, key: ActorKey, uid: String) {
        let actor = StateRef {
            key,
            uid,
            pool: self.pool.clone(),
        };
        self.left.lock().unwrap_or_else(|e| e.into_inner()).push(actor);
    }

    /// Removes the state of the Actors that left this worker since the last call and no longer
    /// exist; returns how many. The list is read after they left, so a deleted one is not in it.
    /// Those whose removal failed wait for the sweep.
    pub async fn check_left(&self, actors: &Api<Actor>) -> anyhow::Result<usize> {
        let left = std::mem::take(&mut *self.left.lock().unwrap_or_else(|e| e.into_inner()));
        if left.is_empty() {
            return Ok(0);
        }
        let existing = match existing_actors(actors).await {
            Ok(existing) => existing,
            Err(e) => {
                // Checked again next round.
                self.left.lock().unwrap_or_else(|e| e.into_inner()).extend(left);
                return Err(e.into());
            }
        };
        let mut removed = 0;
        for actor in orphans(left, &existing) {
            if self.forget(&actor, "deleted").await {
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn forget(&self, actor: &StateRef, why: &str) -> bool {
        match self.store.forget(actor).await {
            Ok(gone) => {
                if gone.rows + gone.journal_entries > 0 {
                    tracing::info!(actor = %actor.key, uid = %actor.uid, rows = gone.rows, journal_entries = gone.journal_entries, why, "removed the state of a deleted Actor (persistence.whenDeleted: Delete)");
                }
                true
            }
            Err(e) => {
                tracing::warn!(actor = %actor.key, error = %e, "could not remove a deleted Actor's state; the next sweep tries again");
                false
            }
        }
    }

    /// Removes the rows of this pool whose Actor object is gone; returns how many Actors' state
    /// it removed. The rows are read before the Actors are listed, so an Actor created meanwhile
    /// (and its first row) can only be in the list, never missing from it.
    pub async fn sweep(&self, actors: &Api<Actor>) -> anyhow::Result<usize> {
        let stored = self.store.stored(&self.namespace, &self.pool).await?;
        if stored.is_empty() {
            return Ok(0);
        }
        let existing = existing_actors(actors).await?;
        let mut removed = 0;
        for actor in orphans(stored, &existing) {
            if self.forget(&actor, "swept: its Actor no longer exists").await {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Sweeps now and then every `sweep_every`, and checks the Actors that left this worker
    /// every `check_every`, forever.
    pub async fn run(self: Arc<Self>, actors: Api<Actor>, sweep_every: Duration, check_every: Duration) {
        let mut next_sweep = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_sweep {
                next_sweep += sweep_every;
                match self.sweep(&actors).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(actors = n, "swept the state of deleted Actors"),
                    Err(e) => {
                        tracing::warn!(error = %e, "the sweep of deleted Actors' state failed; tried again later")
                    }
                }
            }
            if let Err(e) = self.check_left(&actors).await {
                tracing::warn!(error = %e, "could not check whether the Actors that left were deleted; checked again soon");
            }
            tokio::time::sleep(check_every).await;
        }
    }
}

/// Every Actor of the namespace as (name, uid): their metadata only, a page at a time (a sweep
/// must stay cheap for the API server in a namespace of many thousands of Actors).
async fn existing_actors(actors: &Api<Actor>) -> kube::Result<HashSet<(String, String)>> {
    let mut existing = HashSet::new();
    let mut params = ListParams::default().limit(LIST_PAGE);
    loop {
        let page = actors.list_metadata(&params).await?;
        existing.extend(
            page.items
                .iter()
                .filter_map(|a| Some((a.name_any(), a.metadata.uid.clone()?))),
        );
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(existing),
        }
    }
}

/// Actors per page of the sweep's list.
const LIST_PAGE: u32 = 500;

/// The stored Actors that no longer exist: no Actor object of that name and uid.
pub fn orphans(stored: Vec<StateRef>, existing: &HashSet<(String, String)>) -> Vec<StateRef> {
    stored
        .into_iter()
        .filter(|s| !existing.contains(&(s.key.name.clone(), s.uid.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::{JournalWrite, memory::MemoryStore};

    fn actor(name: &str, uid: &str) -> StateRef {
        StateRef {
            key: ActorKey::new("ns", name),
            uid: uid.into(),
            pool: "p".into(),
        }
    }

    #[test]
    fn only_rows_whose_actor_object_is_gone_are_orphans() {
        let existing: HashSet<_> = [("kept".to_string(), "u1".to_string())].into();
        let stored = vec![actor("kept", "u1"), actor("deleted", "u2"), actor("kept", "u0")];
        let names: Vec<_> = orphans(stored, &existing)
            .into_iter()
            .map(|s| (s.key.name, s.uid))
            .collect();
        assert_eq!(
            names,
            [("deleted".into(), "u2".into()), ("kept".into(), "u0".into())],
            "a row of an earlier Actor of the same name is an orphan too"
        );
    }

    #[tokio::test]
    async fn forgetting_an_actor_removes_its_row_and_journal_but_not_those_of_a_new_actor_of_its_name() {
        let store = MemoryStore::default();
        let journal = JournalWrite {
            messages: 1,
            keep: 10,
            keep_for: None,
        };
        let old = actor("a", "old");
        store.activate(&old, 1, None).await.unwrap();
        store.save(&old, 1, &json!(1), Some(&journal)).await.unwrap();
        let new = actor("a", "new");
        store.activate(&new, 1, None).await.unwrap();
        store.save(&new, 1, &json!(2), Some(&journal)).await.unwrap();

        let gone = store.forget(&old).await.unwrap();
        assert_eq!(
            (gone.rows, gone.journal_entries),
            (0, 1),
            "the row is the new Actor's"
        );
        assert_eq!(store.get(&new.key).map(|(_, s)| s), Some(Some(json!(2))));
        let gone = store.forget(&new).await.unwrap();
        assert_eq!((gone.rows, gone.journal_entries), (1, 1));
        assert!(store.get(&new.key).is_none());
        assert!(store.journal(&new.key, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_store_lists_only_the_actors_of_the_pool_asked_for() {
        let store = MemoryStore::default();
        store.activate(&actor("a", "u1"), 1, None).await.unwrap();
        let mut other = actor("b", "u2");
        other.pool = "other".into();
        store.activate(&other, 1, None).await.unwrap();
        let stored = store.stored("ns", "p").await.unwrap();
        assert_eq!(stored, vec![actor("a", "u1")]);
        assert!(store.stored("elsewhere", "p").await.unwrap().is_empty());
    }
}
