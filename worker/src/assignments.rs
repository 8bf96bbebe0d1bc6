//! The Actors assigned to this worker: a watch on the `troupe.dev/worker=<pod>` label, applied to
//! the host as they come, each with its epoch (annotation `troupe.dev/epoch`) and the version it
//! was read at (the precondition of the worker's claim).
//!
//! After a fence the watch starts over with a fresh list (a consistent read, not the watch's
//! cache), and only once that list is complete may the host lift the fence: what moved away while
//! this worker could not prove its lease is then gone from the host before anything restarts.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    api::ListParams,
    runtime::{WatchStreamExt, watcher},
};
use troupe_crds::{Actor, ActorPhase, labels};

use crate::{
    cleanup::Cleanup,
    host::{ActorKey, Assignment, Departure, Host, PreviousHolder},
};

fn key(a: &Actor) -> ActorKey {
    ActorKey::new(a.namespace().unwrap_or_default(), a.name_any())
}

/// The assignment an Actor object carries. A malformed epoch counts as none (0).
pub fn assignment_of(a: &Actor) -> Assignment {
    Assignment {
        spec: a.spec.clone(),
        generation: a.metadata.generation,
        epoch: a.assignment_epoch().unwrap_or(0),
        resource_version: a.resource_version(),
        previous: previous_holder(a),
        uid: a.metadata.uid.clone(),
    }
}

/// The worker that stopped the actor for a planned move, and the epoch that ended there, as the
/// operator wrote them with this assignment (`troupe.dev/handoff-from: <pod>/<epoch>`). None
/// after a crash or for a new actor: there is no state to ask for.
fn previous_holder(a: &Actor) -> Option<PreviousHolder> {
    let (worker, epoch) = a.handoff_from_annotation()?;
    Some(PreviousHolder {
        worker: worker.to_string(),
        epoch,
        pool: a.spec.pool.clone(),
    })
}

/// What to do once an Actor left this worker (moved away or deleted: its Delete event cannot
/// tell, see `cleanup`): note it, so that its stored state is removed if it was deleted, when
/// the pool removes deleted Actors' state.
fn note_gone(cleanup: Option<&Arc<Cleanup>>, a: &Actor) -> impl FnOnce() + Send + 'static {
    let noted = match (cleanup, a.metadata.uid.clone()) {
        (Some(cleanup), Some(uid)) => Some((cleanup.clone(), key(a), uid)),
        _ => None,
    };
    move || {
        if let Some((cleanup, key, uid)) = noted {
            cleanup.gone_from_here(key, uid);
        }
    }
}

/// Watches this pod's Actors in `namespace` forever. `synced` turns true after the first complete
/// list; `relist` asks for a fresh list on behalf of fence generation N, after which the fence
/// is lifted.
pub async fn run(
    client: Client,
    host: Arc<Host>,
    namespace: String,
    pod: String,
    synced: tokio::sync::watch::Sender<bool>,
    mut relist: tokio::sync::watch::Receiver<u64>,
    cleanup: Option<Arc<Cleanup>>,
) {
    let api: Api<Actor> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().labels(&format!("{}={pod}", labels::WORKER));
    loop {
        // The fence generation this list serves (0: none asked yet).
        let for_fence = *relist.borrow_and_update();
        let mut stream = watcher(api.clone(), config.clone()).default_backoff().boxed();
        let mut listing: Option<BTreeSet<ActorKey>> = None;
        loop {
            let event = tokio::select! {
                event = stream.next() => match event {
                    Some(e) => e,
                    None => break,
                },
                changed = relist.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if *relist.borrow_and_update() == for_fence {
                        // This list already serves that fence: let it finish.
                        continue;
                    }
                    tracing::info!(generation = *relist.borrow(), "re-reading the assignments after a fence");
                    break;
                }
            };
            match event {
                Ok(watcher::Event::Init) => listing = Some(BTreeSet::new()),
                Ok(watcher::Event::InitApply(a)) | Ok(watcher::Event::Apply(a)) => {
                    let k = key(&a);
                    if let Some(seen) = listing.as_mut() {
                        seen.insert(k.clone());
                    }
                    if a.metadata.deletion_timestamp.is_some() {
                        host.depart(&k, a.resource_version(), note_gone(cleanup.as_ref(), &a));
                    } else {
                        host.assign(k.clone(), assignment_of(&a)).await;
                        host.observe_published(&k, a.status.as_ref().and_then(|s| s.phase));
                    }
                }
                // Deleted, or no longer labelled with this pod (moved away).
                Ok(watcher::Event::Delete(a)) => {
                    host.depart(&key(&a), a.resource_version(), note_gone(cleanup.as_ref(), &a));
                }
                Ok(watcher::Event::InitDone) => {
                    // Actors unassigned while the watch was down are stopped now.
                    if let Some(seen) = listing.take() {
                        for k in host.keys() {
                            if !seen.contains(&k) {
                                host.depart(&k, None, || ());
                            }
                        }
                    }
                    synced.send_replace(true);
                    tokio::spawn(confirm_released(api.clone(), host.clone(), pod.clone()));
                    if for_fence != 0
                        && host.is_fenced()
                        && !host.lift_fence(for_fence).await
                        && host.is_fenced()
                        && host.fence_generation() == for_fence
                    {
                        // The proof ran out while this list was read: it may predate a move
                        // made meanwhile. Once the lease is renewed, list again for that fence.
                        wait_for_proof(&host).await;
                        break;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "watch of assigned actors failed; retrying"),
            }
        }
    }
}

/// Waits until the worker's lease proof is live again (the next renewal that succeeds).
async fn wait_for_proof(host: &Host) {
    while !host.config().lease.is_live() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether this worker still owes the confirmation that it stopped `a`, released from it: not
/// yet said (phase Migrating from this pod under the assignment's epoch) and not assigned since.
fn owes_confirmation(a: &Actor, pod: &str) -> bool {
    let epoch = a.assignment_epoch().unwrap_or(0);
    let confirmed = a.status.as_ref().is_some_and(|s| {
        s.phase == Some(ActorPhase::Migrating)
            && s.worker.as_deref() == Some(pod)
            && a.reported_epoch().unwrap_or(0) == epoch
    });
    !confirmed && !a.labels().contains_key(labels::WORKER) && a.metadata.deletion_timestamp.is_none()
}

/// After a full read of the assignments: the actors released from this pod
/// (`troupe.dev/released-from`) that it does not host are confirmed as stopped. The process that
/// was asked to stop them may have died before it could say so (a container restart keeps the
/// pod name, and with it a live lease), and the operator places them nowhere until someone does.
/// Retried with backoff until the list succeeds.
async fn confirm_released(api: Api<Actor>, host: Arc<Host>, pod: String) {
    let params = ListParams::default().labels(&format!("{}={pod}", labels::RELEASED_FROM));
    let mut wait = Duration::from_millis(500);
    let released = loop {
        match api.list(&params).await {
            Ok(list) => break list.items,
            Err(e) => {
                tracing::warn!(error = %e, "listing the actors released from this worker failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    };
    for a in released.iter().filter(|a| owes_confirmation(a, &pod)) {
        let departure = Departure {
            key: key(a),
            epoch: a.assignment_epoch().unwrap_or(0),
            resource_version: a.resource_version(),
        };
        tracing::info!(actor = %departure.key, epoch = departure.epoch, "confirming the stop of an actor released from this pod that this process does not host");
        host.retry_departure(departure);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn released(status: serde_json::Value, labels: serde_json::Value) -> Actor {
        serde_json::from_value(json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "Actor",
            "metadata": {"name": "a", "namespace": "ns", "labels": labels,
                         "annotations": {labels::EPOCH: "4"}},
            "spec": {"pool": "p", "behavior": "echo"},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn a_released_actor_not_yet_confirmed_is_owed_a_confirmation() {
        let a = released(
            json!({"phase": "Pending", "worker": "w-1", "epoch": 4}),
            json!({labels::RELEASED_FROM: "w-1"}),
        );
        assert!(owes_confirmation(&a, "w-1"));
    }

    #[test]
    fn a_confirmation_under_the_assignments_epoch_is_not_written_twice() {
        let a = released(
            json!({"phase": "Migrating", "worker": "w-1", "epoch": 4}),
            json!({labels::RELEASED_FROM: "w-1"}),
        );
        assert!(!owes_confirmation(&a, "w-1"));
        let older = released(
            json!({"phase": "Migrating", "worker": "w-1", "epoch": 3}),
            json!({labels::RELEASED_FROM: "w-1"}),
        );
        assert!(owes_confirmation(&older, "w-1"));
    }

    #[test]
    fn an_actor_assigned_again_is_owed_nothing() {
        let a = released(
            json!({"phase": "Pending", "worker": "w-1", "epoch": 4}),
            json!({labels::RELEASED_FROM: "w-1", labels::WORKER: "w-2"}),
        );
        assert!(!owes_confirmation(&a, "w-1"));
    }

    #[test]
    fn an_assignment_after_a_planned_move_names_the_worker_and_epoch_to_ask_for_the_state() {
        let mut a = released(json!({"phase": "Placed", "worker": "w-2", "epoch": 5}), json!({}));
        assert_eq!(
            assignment_of(&a).previous,
            None,
            "a new or crashed actor asks nobody"
        );
        a.annotations_mut()
            .insert(labels::HANDOFF_FROM.into(), "counters-7d9-x2b/4".into());
        assert_eq!(
            assignment_of(&a).previous,
            Some(PreviousHolder {
                worker: "counters-7d9-x2b".into(),
                epoch: 4,
                pool: "p".into()
            })
        );
        for bad in ["no-epoch", "w/not-a-number", "w/-1"] {
            a.annotations_mut()
                .insert(labels::HANDOFF_FROM.into(), bad.into());
            assert_eq!(assignment_of(&a).previous, None, "{bad}");
        }
    }
}
