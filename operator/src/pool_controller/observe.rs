//! Observe: one snapshot of a pool's actors and live workers, and the rollout's inputs that need
//! I/O (an analysis round, a firing alert).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Instant,
};

use k8s_openapi::{api::coordination::v1::Lease, jiff::Timestamp};
use kube::{Api, ResourceExt};
use troupe_crds::{Actor, ActorPool};

use super::Error;
use crate::{
    context::Context,
    membership::{LiveWorker, live_workers},
    placement::worker_of,
    revisions::canary_actors,
    rollout::{AlertHit, Rollout},
};

/// What one reconcile knows of a pool's actors and workers.
pub(super) struct Snapshot {
    pub ns: String,
    pub name: String,
    /// The revision of the pool's current template.
    pub target: String,
    pub now: Timestamp,
    /// The pool's actors (not being deleted).
    pub actors: Vec<Arc<Actor>>,
    /// The pool's live workers, judged on the operator's clock.
    pub live: Vec<LiveWorker>,
    pub live_names: BTreeSet<String>,
    pub revision_of_worker: BTreeMap<String, String>,
}

impl Snapshot {
    pub async fn observe(
        ctx: &Context,
        pool: &ActorPool,
        target: &str,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let ns = pool.namespace().unwrap_or_default();
        let name = pool.name_any();
        let actors: Vec<Arc<Actor>> = ctx
            .actors
            .state()
            .into_iter()
            .filter(|a| {
                a.namespace().as_deref() == Some(&ns)
                    && a.spec.pool == name
                    && a.metadata.deletion_timestamp.is_none()
            })
            .collect();
        // This process's own placement writes, where the watch has not brought them yet.
        let actors = ctx.actor_writes.freshest(actors);
        let live = observe_workers(ctx, &ns, &name, &actors).await?;
        let live_names = live.iter().map(|w| w.name.clone()).collect();
        let revision_of_worker = live
            .iter()
            .map(|w| (w.name.clone(), w.revision.clone()))
            .collect();
        Ok(Self {
            ns,
            name,
            target: target.to_string(),
            now,
            actors,
            live,
            live_names,
            revision_of_worker,
        })
    }

    /// When the first of the live workers counts as gone unless it renews.
    pub fn next_lapse(&self) -> Option<std::time::Duration> {
        self.live.iter().map(|w| w.lapses_in).min()
    }

    /// The live workers of revision `rev` that take actors (not leaving).
    pub fn workers_of(&self, rev: &str) -> Vec<&LiveWorker> {
        self.live
            .iter()
            .filter(|w| w.revision == rev && !w.leaving)
            .collect()
    }

    /// The live workers that are leaving (their actors move to the others).
    pub fn leaving(&self) -> impl Iterator<Item = &LiveWorker> {
        self.live.iter().filter(|w| w.leaving)
    }
}

/// The pool's live workers, judged on the operator's clock. A worker that looks gone while
/// actors are still labelled with it is read again straight from the API server before its
/// actors are failed over, so that a stalled or lagging Lease watch can never make live workers
/// look dead (and fail a whole pool over at once).
async fn observe_workers(
    ctx: &Context,
    ns: &str,
    pool: &str,
    actors: &[Arc<Actor>],
) -> Result<Vec<LiveWorker>, Error> {
    let now = Instant::now();
    let mut leases: BTreeMap<String, Arc<Lease>> = ctx
        .leases
        .state()
        .into_iter()
        .filter(|l| l.namespace().as_deref() == Some(ns))
        .map(|l| (l.name_any(), l))
        .collect();
    let live = live_workers(leases.values().map(|l| l.as_ref()), pool, &ctx.leases_seen, now);
    let live_names: BTreeSet<&str> = live.iter().map(|w| w.name.as_str()).collect();
    let suspects: BTreeSet<String> = actors
        .iter()
        .filter_map(|a| worker_of(a))
        .filter(|w| !live_names.contains(w.as_str()))
        .collect();
    if suspects.is_empty() {
        return Ok(live);
    }
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), ns);
    for worker in suspects {
        match api.get_opt(&worker).await.map_err(Error::ReadLease)? {
            Some(fresh) => {
                leases.insert(worker, Arc::new(fresh));
            }
            None => {
                leases.remove(&worker);
            }
        }
    }
    Ok(live_workers(
        leases.values().map(|l| l.as_ref()),
        pool,
        &ctx.leases_seen,
        Instant::now(),
    ))
}

/// The firing alert the webhook received for this pool, if the pool rolls back on alerts. It
/// stays in memory until the decision it leads to is written ([`forget_alert`]): a failed status
/// write must not lose it.
pub(super) fn peek_alert(ctx: &Context, pool: &ActorPool, snap: &Snapshot) -> Option<(AlertHit, Instant)> {
    if !pool.spec.rollback.as_ref().is_some_and(|r| r.on_alerts) {
        return None;
    }
    ctx.alerts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(snap.ns.clone(), snap.name.clone()))
        .cloned()
}

/// Drops the alert a written decision acted on (not one that arrived since).
pub(super) fn forget_alert(ctx: &Context, snap: &Snapshot, acted_on: &(AlertHit, Instant)) {
    let mut alerts = ctx.alerts.lock().unwrap_or_else(|e| e.into_inner());
    let key = (snap.ns.clone(), snap.name.clone());
    if alerts
        .get(&key)
        .is_some_and(|(_, received)| *received == acted_on.1)
    {
        alerts.remove(&key);
    }
}

/// Which actors go to the canary revision and which stay on stable.
pub(super) struct Groups {
    pub stable_revision: String,
    pub canary_revision: Option<String>,
    pub canary: BTreeSet<String>,
}

impl Groups {
    pub fn of(r: &Rollout, snap: &Snapshot) -> Self {
        let stable_revision = r.stable.clone().unwrap_or_else(|| snap.target.clone());
        let canary_revision = r.canary.clone().filter(|c| *c != stable_revision);
        let canary = match &canary_revision {
            Some(rev) => {
                let candidates: Vec<(String, bool)> = snap
                    .actors
                    .iter()
                    .map(|a| {
                        let on = worker_of(a).and_then(|w| snap.revision_of_worker.get(&w).cloned());
                        (a.name_any(), on.as_deref() == Some(rev))
                    })
                    .collect();
                canary_actors(&candidates, r.weight.unwrap_or(0))
            }
            None => BTreeSet::new(),
        };
        Self {
            stable_revision,
            canary_revision,
            canary,
        }
    }

    /// Every actor is on a live worker of its group's revision that is not leaving.
    pub fn settled(&self, snap: &Snapshot) -> bool {
        let leaving: BTreeSet<&str> = snap.leaving().map(|w| w.name.as_str()).collect();
        snap.actors.iter().all(|a| {
            if worker_of(a).is_some_and(|w| leaving.contains(w.as_str())) {
                return false;
            }
            let want = if self.canary.contains(&a.name_any()) {
                self.canary_revision.as_deref()
            } else {
                Some(self.stable_revision.as_str())
            };
            let on = worker_of(a).and_then(|w| snap.revision_of_worker.get(&w).cloned());
            on.is_some() && on.as_deref() == want
        })
    }
}
