//! The node agent and the Pod objects in the API, both ways. It creates a pod's object before
//! the pod starts (so the uid its containers are given is the object's), writes the pod's status
//! when it changes, and deletes the object once the pod is gone. It honours what others do to
//! Pods there, as a kubelet does: a Pod deleted through the API (deletionTimestamp set) is
//! terminated with the grace period asked for and then removed for good; one deleted outright
//! is terminated; a Pod object of this node that it does not run (left by an earlier run of the
//! agent) is removed, so that its Deployment gets a replacement.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod as ApiPod};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions},
    runtime::{WatchStreamExt, reflector, watcher},
};

use super::{Deletion, Node, NodeState, publish, remove_pod};

/// How long one call to the API server may take before the agent moves on (and retries on a
/// later pass): a hung API server must not stop the node's loop.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The Pod objects bound to this node, as the API serves them.
pub type PodStore = reflector::Store<ApiPod>;

/// Watches the Pods of this node into a store; the future runs the watch.
pub fn watch(client: Client) -> (PodStore, impl std::future::Future<Output = ()>) {
    let (store, writer) = reflector::store();
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", publish::NODE_NAME));
    let watch = watcher(Api::<ApiPod>::all(client), config)
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::warn!(error = %e, "pod watch error; retrying");
            }
        });
    (store, watch)
}

/// The Pod objects by uid.
pub fn by_uid(store: &PodStore) -> BTreeMap<String, Arc<ApiPod>> {
    store
        .state()
        .into_iter()
        .filter_map(|p| Some((p.metadata.uid.clone()?, p)))
        .collect()
}

/// The Pod objects of this node in `namespace`, by uid, read from the API server now.
pub async fn list(client: &Client, namespace: &str) -> anyhow::Result<BTreeMap<String, Arc<ApiPod>>> {
    let api: Api<ApiPod> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().fields(&format!("spec.nodeName={}", publish::NODE_NAME));
    let list = timed(api.list(&params)).await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|p| Some((p.metadata.uid.clone()?, Arc::new(p))))
        .collect())
}

async fn timed<T>(call: impl std::future::Future<Output = kube::Result<T>>) -> anyhow::Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(r) => Ok(r?),
        Err(_) => anyhow::bail!("no answer from the API server in {CALL_TIMEOUT:?}"),
    }
}

/// Creates the Pod object of a new replica of `d`; the object the API server made (its uid,
/// its creationTimestamp) comes back.
pub async fn create(client: &Client, d: &Deployment, name: &str, hash: &str) -> anyhow::Result<ApiPod> {
    let object = publish::pod_object(d, name, hash);
    let api: Api<ApiPod> = Api::namespaced(client.clone(), &d.namespace().unwrap_or_default());
    timed(api.create(&PostParams::default(), &object)).await
}

/// Deletes the Pod object `uid` (never a new Pod of the same name) with `grace` seconds; 0
/// removes it for good. An object already gone is fine. Whether the delete was done.
pub async fn delete(client: &Client, namespace: &str, name: &str, uid: &str, grace: u32) -> bool {
    let api: Api<ApiPod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(grace),
        preconditions: Some(Preconditions {
            uid: Some(uid.into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match timed(api.delete(name, &params)).await {
        Ok(_) => {
            tracing::debug!(namespace, pod = name, grace, "deleted the Pod object");
            true
        }
        Err(e) if is_gone(&e) => true,
        Err(e) => {
            tracing::warn!(namespace, pod = name, error = %e, "deleting the Pod object failed");
            false
        }
    }
}

/// Not found, or a precondition that says it is another Pod of that name now.
fn is_gone(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<kube::Error>(), Some(kube::Error::Api(s)) if s.code == 404 || s.code == 409)
}

/// Squares the node's pods with their objects (`objects`, by uid): a pod whose object was
/// deleted through the API is terminated (gracefully, with the grace period the delete set);
/// an object the node neither runs, nor still terminates, nor has just deleted is removed.
pub fn reconcile(node: &Arc<Node>, state: &mut NodeState, objects: &BTreeMap<String, Arc<ApiPod>>) {
    let mut deleted = Vec::new();
    for (key, pod) in state.pods.iter_mut() {
        match objects.get(&pod.uid) {
            Some(object) => {
                pod.api_seen = true;
                if object.metadata.deletion_timestamp.is_some() {
                    let grace = object
                        .metadata
                        .deletion_grace_period_seconds
                        .map_or(pod.grace, |s| Duration::from_secs(s.max(0) as u64));
                    deleted.push((key.clone(), grace, Deletion::Asked));
                }
            }
            // Deleted outright (a grace period of 0, or its namespace's objects wiped): the
            // kubelet still stops the containers with the pod's own grace period.
            None if pod.api_seen => deleted.push((key.clone(), pod.grace, Deletion::Gone)),
            // Created a moment ago; the watch has not brought it yet.
            None => {}
        }
    }
    for (key, grace, how) in deleted {
        tracing::info!(namespace = %key.0, pod = %key.1, ?grace, "the Pod was deleted through the API; terminating it");
        remove_pod(node, state, &key, grace, how);
    }
    state.deleted_uids.retain(|uid| objects.contains_key(uid));
    for (uid, object) in objects {
        if state.pod_uids.contains(uid) || state.deleted_uids.contains(uid) {
            continue;
        }
        let (ns, name) = (object.namespace().unwrap_or_default(), object.name_any());
        tracing::info!(namespace = %ns, pod = %name, "removing a Pod object this node does not run");
        // Marked deleted at once, so that the next passes do not ask again meanwhile; a delete
        // that failed is tried again.
        state.deleted_uids.insert(uid.clone());
        let (node, uid) = (node.clone(), uid.clone());
        tokio::spawn(async move {
            if !delete(&node.client, &ns, &name, &uid, 0).await {
                node.state.lock().await.deleted_uids.remove(&uid);
            }
        });
    }
}

/// Writes the status of every pod whose status changed since it was last written.
pub async fn publish_statuses(node: &Arc<Node>) {
    let now = std::time::SystemTime::now();
    let changed: Vec<_> = {
        let state = node.state.lock().await;
        state
            .pods
            .values()
            .filter_map(|p| {
                let containers: Vec<_> = p.images.iter().cloned().zip(p.statuses()).collect();
                let status = publish::pod_status(&p.ip, p.started_at, &containers, p.published.as_ref(), now);
                (p.published.as_ref() != Some(&status))
                    .then(|| ((p.namespace.clone(), p.name.clone()), p.uid.clone(), status))
            })
            .collect()
    };
    for (key, uid, status) in changed {
        let api: Api<ApiPod> = Api::namespaced(node.client.clone(), &key.0);
        let patch = serde_json::json!({"status": status});
        match timed(api.patch_status(&key.1, &PatchParams::default(), &Patch::Merge(&patch))).await {
            Ok(_) => {
                let mut state = node.state.lock().await;
                if let Some(p) = state.pods.get_mut(&key).filter(|p| p.uid == uid) {
                    p.published = Some(status);
                }
            }
            Err(e) if is_gone(&e) => {}
            Err(e) => {
                tracing::warn!(namespace = %key.0, pod = %key.1, error = %e, "writing the pod's status failed")
            }
        }
    }
}
