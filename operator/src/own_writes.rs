//! Reading one's own writes through a lagging cache.
//!
//! A reconcile decides from the watch caches, and a cache shows this process's writes only once
//! the watch brings them, a moment later. Deciding again from the copy read before a write
//! repeats the decision: for a pool, a measurement counted twice or an Event sent twice; for an
//! actor, a placement written again (refused as a conflict, since every placement write is
//! conditional on the version it was decided from, and then decided once more). Like the
//! "expectations" of Kubernetes' ReplicaSet controller, these records bridge that moment, for
//! at most a few seconds: a watch that lags longer is not waited for.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kube::ResourceExt;

/// How long a record of a write is trusted over the cache.
const PATIENCE: Duration = Duration::from_secs(5);

/// The objects this process changed, by uid, with the resourceVersion it read before: a cached
/// copy with that version is stale (the watch has not brought the change yet).
pub struct OwnWrites {
    written: Mutex<HashMap<String, (String, Instant)>>,
    patience: Duration,
}

impl Default for OwnWrites {
    fn default() -> Self {
        Self {
            written: Mutex::default(),
            patience: PATIENCE,
        }
    }
}

impl OwnWrites {
    /// A write to the object `uid` read at version `read`, answered with version `after` (the
    /// same version: the write changed nothing, so nothing is stale).
    pub fn wrote(&self, uid: Option<String>, read: Option<String>, after: Option<String>) {
        if let (Some(uid), Some(read)) = (uid, read)
            && after.as_ref() != Some(&read)
        {
            let mut w = self.written.lock().unwrap_or_else(|e| e.into_inner());
            w.insert(uid, (read, Instant::now()));
        }
    }

    pub fn is_stale(&self, uid: Option<String>, version: Option<String>) -> bool {
        let (Some(uid), Some(version)) = (uid, version) else {
            return false;
        };
        let mut w = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let stale = w
            .get(&uid)
            .is_some_and(|(read, at)| *read == version && at.elapsed() < self.patience);
        if !stale {
            w.remove(&uid);
        }
        stale
    }
}

/// Objects this process wrote, by uid: the copy the server answered the last write with, and
/// every version the object had before it in this process's writes. A cached copy at one of
/// those versions has not caught up yet, and the written copy stands in for it.
pub struct OwnCopies<K> {
    written: Mutex<HashMap<String, Written<K>>>,
}

struct Written<K> {
    superseded: Vec<String>,
    copy: Arc<K>,
    at: Instant,
}

impl<K> Default for OwnCopies<K> {
    fn default() -> Self {
        Self {
            written: Mutex::default(),
        }
    }
}

impl<K: kube::Resource> OwnCopies<K> {
    /// Writes to an object read at `read`, the last answered with `after`; `between` are the
    /// versions the earlier writes of the same sequence answered with.
    pub fn wrote(&self, read: &K, between: Vec<String>, after: K) {
        let (Some(uid), Some(first)) = (read.uid(), read.resource_version()) else {
            return;
        };
        let mut superseded = vec![first];
        superseded.extend(between);
        let mut w = self.written.lock().unwrap_or_else(|e| e.into_inner());
        w.insert(
            uid,
            Written {
                superseded,
                copy: Arc::new(after),
                at: Instant::now(),
            },
        );
    }

    /// The freshest copies of `cached` this process knows: for each, what it wrote, while the
    /// cache still shows a version from before that write; otherwise the cached copy (and the
    /// record goes). One lock for the whole snapshot; nothing to do when nothing was written.
    pub fn freshest(&self, cached: Vec<Arc<K>>) -> Vec<Arc<K>> {
        let mut w = self.written.lock().unwrap_or_else(|e| e.into_inner());
        // Records past their patience go, those of deleted objects among them.
        w.retain(|_, r| r.at.elapsed() < PATIENCE);
        if w.is_empty() {
            return cached;
        }
        cached
            .into_iter()
            .map(|c| {
                let Some(uid) = c.meta().uid.as_deref() else {
                    return c;
                };
                let Some(written) = w.get(uid) else { return c };
                let behind = c
                    .meta()
                    .resource_version
                    .as_ref()
                    .is_some_and(|v| written.superseded.contains(v));
                if behind {
                    return written.copy.clone();
                }
                w.remove(uid);
                c
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use troupe_crds::Actor;

    fn actor(version: &str, worker: Option<&str>) -> Actor {
        let mut a: Actor = serde_json::from_value(serde_json::json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "Actor",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u1", "resourceVersion": version},
            "spec": {"pool": "p", "behavior": "echo"}
        }))
        .unwrap();
        if let Some(w) = worker {
            a.labels_mut()
                .insert(troupe_crds::labels::WORKER.into(), w.into());
        }
        a
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn a_copy_read_before_our_own_change_is_stale_until_a_newer_one_arrives() {
        let w = OwnWrites::default();
        w.wrote(some("u"), some("10"), some("11"));
        assert!(w.is_stale(some("u"), some("10")));
        assert!(!w.is_stale(some("u"), some("11")), "the watch brought the change");
        assert!(!w.is_stale(some("u"), some("10")), "forgotten once caught up");
    }

    #[test]
    fn a_write_that_changed_nothing_or_a_lagging_watch_never_blocks() {
        let w = OwnWrites::default();
        w.wrote(some("u"), some("10"), some("10"));
        assert!(!w.is_stale(some("u"), some("10")));
        let impatient = OwnWrites {
            patience: Duration::ZERO,
            ..Default::default()
        };
        impatient.wrote(some("u"), some("10"), some("11"));
        assert!(!impatient.is_stale(some("u"), some("10")));
    }

    #[test]
    fn a_cache_behind_this_process_s_writes_shows_what_was_written() {
        let copies = OwnCopies::default();
        let read = actor("1", None);
        copies.wrote(&read, vec!["2".into()], actor("3", Some("w1")));
        for behind in ["1", "2"] {
            let seen = copies.freshest(vec![Arc::new(actor(behind, None))]).remove(0);
            assert_eq!(seen.resource_version().as_deref(), Some("3"));
            assert_eq!(
                seen.labels().get(troupe_crds::labels::WORKER).map(String::as_str),
                Some("w1")
            );
        }
    }

    #[test]
    fn a_cache_that_caught_up_or_moved_on_is_believed_and_the_record_goes() {
        let copies = OwnCopies::default();
        copies.wrote(&actor("1", None), vec![], actor("2", Some("w1")));
        // A worker wrote after us: the cache is newer than our copy.
        let newer = copies.freshest(vec![Arc::new(actor("5", Some("w1")))]).remove(0);
        assert_eq!(newer.resource_version().as_deref(), Some("5"));
        // The record went with it: even a stale copy is now taken as it is.
        let old = copies.freshest(vec![Arc::new(actor("1", None))]).remove(0);
        assert_eq!(old.resource_version().as_deref(), Some("1"));
    }
}
