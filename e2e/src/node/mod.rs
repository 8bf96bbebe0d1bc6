//! The local node agent: plays the Deployment controller and the kubelet for Deployments.
//!
//! Each replica of a Deployment runs on its own loopback address, its containers as local
//! processes or as podman containers (`runtime/`), and is a Pod object in the API (created
//! before it starts, its status kept current, deleted when it is gone: `pods_api.rs`). The agent
//! keeps Deployment status true (replicas, updated, ready, available, observedGeneration,
//! conditions), replaces pods when the template changes (new pods first, an old one retired for
//! each new one that is ready), scales (deleting pods in the ReplicaSet controller's order, pod
//! deletion cost included), terminates Pods deleted through the API, restarts crashed containers
//! with the kubelet's backoff, and garbage-collects objects whose owners are gone. See
//! docs/local-control-plane.md for how it differs from a real kubelet.

pub mod api;
mod controller;
pub mod deployment;
pub mod gc;
pub mod launch;
pub mod pod;
pub mod pod_files;
pub mod pods_api;
pub mod probe;
pub mod publish;
pub mod runtime;
mod supervise;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, reflector, watcher},
};
use tokio::sync::Mutex;

use deployment::DeploymentKey;
use pod::{Pod, RuntimeConfig};
use pods_api::PodStore;

/// Settings of the node agent.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub runtime: RuntimeConfig,
    /// Pods get addresses `<prefix>.x.y` (a /16 of loopback), e.g. `127.10` → 127.10.0.2, ….
    pub pod_subnet: String,
    pub listen: SocketAddr,
    /// How often Deployments are reconciled (and status written when it changed).
    pub sync_every: Duration,
    /// How often the garbage collector looks for orphans.
    pub gc_every: Duration,
    /// Where to publish the pods' metrics endpoints as a Prometheus `file_sd` target list (the
    /// stand-in for Kubernetes pod discovery).
    pub scrape_targets: Option<std::path::PathBuf>,
    /// How containers reach the API server (their ServiceAccount tokens); `None`: no tokens.
    pub cluster: Option<pod_files::ClusterAccess>,
}

/// Pods of the node and the addresses they use.
#[derive(Default)]
pub struct NodeState {
    pub pods: BTreeMap<(String, String), Pod>,
    /// The uids of the pods this node runs or is still terminating: their Pod objects stay.
    pub pod_uids: BTreeSet<String>,
    /// The uids of Pod objects this node deleted for good, until the watch shows them gone (so
    /// that they are not taken for objects left by an earlier run meanwhile).
    pub deleted_uids: BTreeSet<String>,
    used_ips: BTreeSet<u32>,
}

impl NodeState {
    pub(crate) fn allocate_ip(&mut self, subnet: &str) -> Option<String> {
        // .0.0, .0.1 and broadcast-looking addresses are skipped; 127.x.0.1 stays the host's.
        let n = (2..65534u32).find(|n| n % 256 != 0 && n % 256 != 255 && !self.used_ips.contains(n))?;
        self.used_ips.insert(n);
        Some(format!("{subnet}.{}.{}", n / 256, n % 256))
    }

    pub(crate) fn release_ip(&mut self, subnet: &str, ip: &str) {
        if let Some(rest) = ip.strip_prefix(subnet).and_then(|r| r.strip_prefix('.'))
            && let Some((a, b)) = rest.split_once('.')
            && let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>())
        {
            self.used_ips.remove(&(a * 256 + b));
        }
    }
}

/// The running agent, shared by its loops and its HTTP API.
pub struct Node {
    pub config: NodeConfig,
    pub client: Client,
    pub state: Mutex<NodeState>,
}

/// The field manager of Deployment status written by the node agent.
const MANAGER: &str = "troupe-local-node";

pub async fn run(config: NodeConfig, client: Client) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.runtime.state_dir)?;
    std::fs::create_dir_all(&config.runtime.logs_dir)?;
    // Containers a previous run left behind (a crash, a SIGKILL) are removed before any starts.
    if config.runtime.default_runtime == runtime::RuntimeKind::Podman
        || runtime::podman_available(&config.runtime.podman).await
    {
        runtime::cleanup_leftovers(&config.runtime.podman).await;
    }
    let node = Arc::new(Node {
        config: config.clone(),
        client: client.clone(),
        state: Mutex::new(NodeState::default()),
    });

    let (store, writer) = reflector::store();
    let deployments: Api<Deployment> = Api::all(client.clone());
    let watch = watcher(deployments, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::warn!(error = %e, "deployment watch error; retrying");
            }
        });
    tokio::spawn(watch);
    let (pods, watch_pods) = pods_api::watch(client.clone());
    tokio::spawn(watch_pods);

    tokio::spawn(gc::run(node.clone(), config.gc_every));
    let api = tokio::spawn(api::serve(node.clone()));

    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(())
    };
    tokio::pin!(shutdown);
    store.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    tracing::info!("node agent running");
    let mut tick = tokio::time::interval(config.sync_every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let span = tracing::debug_span!("sync");
                let _e = span.enter();
                sync(&node, &store.state(), &pods).await;
            }
            _ = &mut shutdown => break,
        }
        if api.is_finished() {
            anyhow::bail!("the node agent's HTTP API stopped");
        }
    }
    tracing::info!("terminating every pod before exit");
    let mut state = node.state.lock().await;
    let pods = std::mem::take(&mut state.pods);
    drop(state);
    let waits: Vec<_> = pods
        .into_values()
        .map(|mut p| {
            let done = p.terminate(Duration::from_secs(5));
            let client = node.client.clone();
            // Their Pod objects go too: nothing runs them any more.
            async move {
                done.await;
                pods_api::delete(&client, &p.namespace, &p.name, &p.uid, 0).await;
            }
        })
        .collect();
    futures::future::join_all(waits).await;
    Ok(())
}

/// One pass of the node: its pods squared with their Pod objects (deletions through the API),
/// the Deployment controller over every Deployment, then the pods' status written.
async fn sync(node: &Arc<Node>, deployments: &[Arc<Deployment>], pods: &PodStore) {
    let objects = pods_api::by_uid(pods);
    pods_api::reconcile(node, &mut *node.state.lock().await, &objects);
    let mut live: BTreeSet<DeploymentKey> = BTreeSet::new();
    for d in deployments {
        let key = DeploymentKey::of(d);
        live.insert(key.clone());
        if d.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Err(e) = controller::sync_one(node, d, &key, &objects).await {
            tracing::warn!(deployment = %key, error = %e, "sync failed");
        }
    }
    // Pods whose Deployment is gone are terminated, as the garbage collector would have their
    // Pods deleted.
    let mut state = node.state.lock().await;
    let orphans: Vec<_> = state
        .pods
        .iter()
        .filter(|(_, p)| !live.contains(&DeploymentKey::new(&p.namespace, &p.deployment)))
        .map(|(k, p)| (k.clone(), p.grace))
        .collect();
    for (k, grace) in orphans {
        tracing::info!(namespace = %k.0, pod = %k.1, "deleting pod: its Deployment is gone");
        remove_pod(node, &mut state, &k, grace, Deletion::Ask);
    }
    drop(state);
    pods_api::publish_statuses(node).await;
    if let Some(path) = &node.config.scrape_targets {
        let targets = scrape_targets(node.state.lock().await.pods.values());
        if let Err(e) = write_if_changed(path, &targets) {
            tracing::warn!(path = %path.display(), error = %e, "writing the scrape targets failed");
        }
    }
}

/// The pods' metrics endpoints in Prometheus `file_sd` form, labelled as Kubernetes pod
/// discovery plus relabelling would: namespace, pod, and the Troupe pool and revision.
pub fn scrape_targets<'a>(pods: impl Iterator<Item = &'a Pod>) -> String {
    let groups: Vec<_> = pods
        .filter(|p| !p.metrics_endpoints.is_empty())
        .map(|p| {
            let mut labels = serde_json::Map::new();
            labels.insert("namespace".into(), p.namespace.clone().into());
            labels.insert("pod".into(), p.name.clone().into());
            for (key, name) in [
                (troupe_crds::labels::POOL, "pool"),
                (troupe_crds::labels::REVISION, "revision"),
            ] {
                if let Some(v) = p.labels.get(key) {
                    labels.insert(name.into(), v.clone().into());
                }
            }
            serde_json::json!({"targets": p.metrics_endpoints, "labels": labels})
        })
        .collect();
    serde_json::to_string_pretty(&groups).unwrap_or_else(|_| "[]".into())
}

fn write_if_changed(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|c| c == content) {
        return Ok(());
    }
    // Prometheus must never read a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(tmp, path)
}

/// Why a pod is removed, which tells what is left to do to its Pod object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deletion {
    /// The node decided (scale-down, rollout, its own HTTP API): the Pod is deleted through the
    /// API with the same grace period, so that it shows Terminating meanwhile.
    Ask,
    /// The Pod was deleted through the API: it has its deletionTimestamp already.
    Asked,
    /// The Pod object is gone already.
    Gone,
}

/// Starts the pod's termination in the background (SIGTERM, SIGKILL after `grace`); when its
/// containers are gone, its Pod object is deleted for good and its address freed.
pub(crate) fn remove_pod(
    node: &Arc<Node>,
    state: &mut NodeState,
    key: &(String, String),
    grace: Duration,
    how: Deletion,
) {
    if let Some(mut pod) = state.pods.remove(key) {
        let done = pod.terminate(grace);
        let node = node.clone();
        let (ns, name, ip, uid) = (
            pod.namespace.clone(),
            pod.name.clone(),
            pod.ip.clone(),
            pod.uid.clone(),
        );
        let grace_secs = grace.as_secs_f64().ceil() as u32;
        tokio::spawn(async move {
            if how == Deletion::Ask {
                pods_api::delete(&node.client, &ns, &name, &uid, grace_secs).await;
            }
            done.await;
            let gone = how == Deletion::Gone || pods_api::delete(&node.client, &ns, &name, &uid, 0).await;
            let mut state = node.state.lock().await;
            state.release_ip(&node.config.pod_subnet, &ip);
            state.pod_uids.remove(&uid);
            if gone {
                state.deleted_uids.insert(uid);
            }
            drop(pod);
        });
    }
}

pub(crate) fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_addresses_are_unique_and_reused_after_release() {
        let mut s = NodeState::default();
        let a = s.allocate_ip("127.10").unwrap();
        let b = s.allocate_ip("127.10").unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("127.10.0.2", "127.10.0.3"));
        s.release_ip("127.10", &a);
        assert_eq!(s.allocate_ip("127.10").unwrap(), "127.10.0.2");
        assert_eq!(s.allocate_ip("127.10").unwrap(), "127.10.0.4");
    }
}
