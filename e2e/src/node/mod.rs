//! The local node agent: plays the Deployment controller and the kubelet for Deployments.
//!
//! Each replica of a Deployment runs on its own loopback address, its containers as local
//! processes or as podman containers (`runtime/`). The agent keeps Deployment status true
//! (replicas, updated, ready, available, observedGeneration, conditions), replaces pods when the
//! template changes (new pods first, an old one retired for each new one that is ready), scales,
//! restarts crashed containers with the kubelet's backoff, and garbage-collects objects whose
//! owners are gone. See docs/local-control-plane.md for how it differs from a real kubelet.

pub mod api;
pub mod deployment;
pub mod gc;
pub mod launch;
pub mod pod;
pub mod pod_files;
pub mod probe;
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
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt, reflector, watcher},
};
use tokio::sync::Mutex;

use deployment::{DeploymentKey, PlanStep, plan, status_for, template_hash};
use pod::{Pod, PodSpec, RuntimeConfig};

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
    /// The uids of the pods this node runs or is still terminating (the garbage collector's
    /// view of Pods, which are not published to the API).
    pub pod_uids: BTreeSet<String>,
    used_ips: BTreeSet<u32>,
}

impl NodeState {
    fn allocate_ip(&mut self, subnet: &str) -> Option<String> {
        // .0.0, .0.1 and broadcast-looking addresses are skipped; 127.x.0.1 stays the host's.
        let n = (2..65534u32).find(|n| n % 256 != 0 && n % 256 != 255 && !self.used_ips.contains(n))?;
        self.used_ips.insert(n);
        Some(format!("{subnet}.{}.{}", n / 256, n % 256))
    }

    fn release_ip(&mut self, subnet: &str, ip: &str) {
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
    tracing::info!("node agent running");
    let mut tick = tokio::time::interval(config.sync_every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let span = tracing::debug_span!("sync");
                let _e = span.enter();
                sync(&node, &store.state()).await;
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
        .map(|mut p| p.terminate(Duration::from_secs(5)))
        .collect();
    futures::future::join_all(waits).await;
    Ok(())
}

/// One pass of the Deployment controller over every Deployment.
async fn sync(node: &Arc<Node>, deployments: &[Arc<Deployment>]) {
    let mut live: BTreeSet<DeploymentKey> = BTreeSet::new();
    for d in deployments {
        let key = DeploymentKey::of(d);
        live.insert(key.clone());
        if d.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Err(e) = sync_one(node, d, &key).await {
            tracing::warn!(deployment = %key, error = %e, "sync failed");
        }
    }
    // Pods whose Deployment is gone are terminated, as the ReplicaSet GC would.
    let mut state = node.state.lock().await;
    let orphans: Vec<_> = state
        .pods
        .iter()
        .filter(|(_, p)| !live.contains(&DeploymentKey::new(&p.namespace, &p.deployment)))
        .map(|(k, _)| k.clone())
        .collect();
    for k in orphans {
        remove_pod(node, &mut state, &k, None);
    }
    if let Some(path) = &node.config.scrape_targets {
        let targets = scrape_targets(state.pods.values());
        drop(state);
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

async fn sync_one(node: &Arc<Node>, d: &Deployment, key: &DeploymentKey) -> anyhow::Result<()> {
    let spec = d.spec.clone().unwrap_or_default();
    let hash = template_hash(&spec.template);
    let grace = Duration::from_secs(
        spec.template
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64,
    );
    let min_ready = Duration::from_secs(spec.min_ready_seconds.unwrap_or(0).max(0) as u64);
    let mut state = node.state.lock().await;
    let pods: Vec<_> = state
        .pods
        .values()
        .filter(|p| p.namespace == key.namespace && p.deployment == key.name)
        .collect();
    for step in plan(spec.replicas.unwrap_or(1), &hash, &pods) {
        match step {
            PlanStep::Create => {
                let Some(ip) = state.allocate_ip(&node.config.pod_subnet) else {
                    anyhow::bail!("no free pod address in {}.0.0/16", node.config.pod_subnet);
                };
                let name = format!("{}-{}-{}", key.name, &hash[..10], random_suffix());
                let spec = PodSpec {
                    namespace: key.namespace.clone(),
                    name: name.clone(),
                    uid: format!("{}-{}", d.uid().unwrap_or_default(), random_suffix()),
                    deployment: key.name.clone(),
                    template_hash: hash.clone(),
                    ip: ip.clone(),
                    labels: spec
                        .template
                        .metadata
                        .as_ref()
                        .and_then(|m| m.labels.clone())
                        .unwrap_or_default(),
                    containers: spec
                        .template
                        .spec
                        .as_ref()
                        .map(|s| s.containers.clone())
                        .unwrap_or_default(),
                    grace,
                    runtime_class: spec
                        .template
                        .spec
                        .as_ref()
                        .and_then(|s| s.runtime_class_name.clone()),
                    security: spec
                        .template
                        .spec
                        .as_ref()
                        .and_then(|s| s.security_context.clone()),
                    volumes: spec
                        .template
                        .spec
                        .as_ref()
                        .and_then(|s| s.volumes.clone())
                        .unwrap_or_default(),
                    service_account: spec
                        .template
                        .spec
                        .as_ref()
                        .and_then(|s| s.service_account_name.clone()),
                    automount_token: spec
                        .template
                        .spec
                        .as_ref()
                        .and_then(|s| s.automount_service_account_token),
                };
                tracing::info!(deployment = %key, pod = %name, %ip, "creating pod");
                let kubelet = pod::Kubelet {
                    client: node.client.clone(),
                    cluster: node.config.cluster.clone(),
                };
                state.pod_uids.insert(spec.uid.clone());
                let pod = Pod::start(spec, &node.config.runtime, kubelet);
                state.pods.insert((key.namespace.clone(), name), pod);
            }
            PlanStep::Delete(name) => {
                tracing::info!(deployment = %key, pod = %name, "deleting pod");
                remove_pod(node, &mut state, &(key.namespace.clone(), name), Some(grace));
            }
        }
    }
    let pods: Vec<_> = state
        .pods
        .values()
        .filter(|p| p.namespace == key.namespace && p.deployment == key.name)
        .collect();
    let status = status_for(d, &hash, &pods, min_ready);
    drop(state);
    if let Some(status) = status {
        let api: Api<Deployment> = Api::namespaced(node.client.clone(), &key.namespace);
        let patch = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "status": status});
        api.patch_status(
            &key.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|e| anyhow::anyhow!("writing status: {e}"))?;
    }
    Ok(())
}

/// Starts the pod's termination in the background and frees its address when it is gone.
pub(crate) fn remove_pod(
    node: &Arc<Node>,
    state: &mut NodeState,
    key: &(String, String),
    grace: Option<Duration>,
) {
    if let Some(mut pod) = state.pods.remove(key) {
        let done = pod.terminate(grace.unwrap_or(Duration::from_secs(30)));
        let node = node.clone();
        let ip = pod.ip.clone();
        let uid = pod.uid.clone();
        tokio::spawn(async move {
            done.await;
            let mut state = node.state.lock().await;
            state.release_ip(&node.config.pod_subnet, &ip);
            state.pod_uids.remove(&uid);
            drop(pod);
        });
    }
}

fn random_suffix() -> String {
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
