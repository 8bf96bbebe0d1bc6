//! The Actors assigned to this worker: a watch on the `troupe.dev/worker=<pod>` label, applied to
//! the host as they come.

use std::{collections::BTreeSet, sync::Arc};

use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use troupe_crds::{Actor, labels};

use crate::host::{ActorKey, Host};

fn key(a: &Actor) -> ActorKey {
    ActorKey::new(a.namespace().unwrap_or_default(), a.name_any())
}

/// Watches this pod's Actors in `namespace` forever. `synced` turns true after the first list.
pub async fn run(
    client: Client,
    host: Arc<Host>,
    namespace: String,
    pod: String,
    synced: tokio::sync::watch::Sender<bool>,
) {
    let api: Api<Actor> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().labels(&format!("{}={pod}", labels::WORKER));
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut listing: Option<BTreeSet<ActorKey>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listing = Some(BTreeSet::new()),
            Ok(watcher::Event::InitApply(a)) | Ok(watcher::Event::Apply(a)) => {
                let k = key(&a);
                if let Some(seen) = listing.as_mut() {
                    seen.insert(k.clone());
                }
                if a.metadata.deletion_timestamp.is_some() {
                    host.remove(&k).await;
                } else {
                    host.upsert(k.clone(), a.spec.clone(), a.metadata.generation)
                        .await;
                    host.observe_published(&k, a.status.as_ref().and_then(|s| s.phase));
                }
            }
            Ok(watcher::Event::Delete(a)) => host.remove(&key(&a)).await,
            Ok(watcher::Event::InitDone) => {
                // Actors unassigned while the watch was down are stopped now.
                if let Some(seen) = listing.take() {
                    for k in host.keys() {
                        if !seen.contains(&k) {
                            host.remove(&k).await;
                        }
                    }
                }
                synced.send_replace(true);
            }
            Err(e) => tracing::warn!(error = %e, "watch of assigned actors failed; retrying"),
        }
    }
}
