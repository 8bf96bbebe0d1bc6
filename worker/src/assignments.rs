//! The Actors assigned to this worker: a watch on the `troupe.dev/worker=<pod>` label, applied to
//! the host as they come, each with its epoch (annotation `troupe.dev/epoch`) and the version it
//! was read at (the precondition of the worker's claim).
//!
//! After a fence the watch starts over with a fresh list (a consistent read, not the watch's
//! cache), and only once that list is complete may the host lift the fence: what moved away while
//! this worker could not prove its lease is then gone from the host before anything restarts.

use std::{collections::BTreeSet, sync::Arc};

use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use troupe_crds::{Actor, labels};

use crate::host::{ActorKey, Assignment, Host};

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
                        host.remove(&k, a.resource_version()).await;
                    } else {
                        host.assign(k.clone(), assignment_of(&a)).await;
                        host.observe_published(&k, a.status.as_ref().and_then(|s| s.phase));
                    }
                }
                // Deleted, or no longer labelled with this pod (moved away).
                Ok(watcher::Event::Delete(a)) => host.remove(&key(&a), a.resource_version()).await,
                Ok(watcher::Event::InitDone) => {
                    // Actors unassigned while the watch was down are stopped now.
                    if let Some(seen) = listing.take() {
                        for k in host.keys() {
                            if !seen.contains(&k) {
                                host.remove(&k, None).await;
                            }
                        }
                    }
                    synced.send_replace(true);
                    if for_fence != 0 && host.is_fenced() {
                        host.lift_fence(for_fence).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "watch of assigned actors failed; retrying"),
            }
        }
    }
}
