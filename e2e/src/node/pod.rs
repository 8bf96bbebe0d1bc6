//! A pod: one local process per container, on the pod's own loopback address, supervised as a
//! kubelet would (restart with exponential backoff, probes, graceful termination).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, Volume};
use serde::Serialize;
use tokio::sync::watch;

use super::{
    pod_files::ClusterAccess,
    runtime::{PodmanConfig, RuntimeKind},
    supervise::{signal_group, supervise},
};

/// How the node agent runs containers; shared by every pod.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where image binaries live (`troupe/worker:tag` runs `<bin_dir>/troupe-worker`).
    pub bin_dir: PathBuf,
    /// Explicit image → executable mappings, checked before the default rule.
    pub image_map: BTreeMap<String, PathBuf>,
    /// Pod folders (`<ns>/<pod>/`: working directories, the Secrets and token read for the pod) and pid files.
    pub state_dir: PathBuf,
    /// One log file per container: `<logs_dir>/<namespace>_<pod>_<container>.log`.
    pub logs_dir: PathBuf,
    /// The first restart delay; doubled each time up to `backoff_max` (kubelet: 10 s, 5 min).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// The runtime of pods without a runtimeClassName (`--runtime`).
    pub default_runtime: RuntimeKind,
    /// How podman is run, for pods on the podman runtime.
    pub podman: PodmanConfig,
}

/// What the kubelet part of the agent reads from the API server for a pod (`pod_files.rs`).
#[derive(Clone)]
pub struct Kubelet {
    pub client: kube::Client,
    /// How containers reach the API server; `None`: no ServiceAccount tokens are mounted.
    pub cluster: Option<ClusterAccess>,
}

/// What a pod is, as the node agent's API shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub deployment: String,
    pub template_hash: String,
    pub ip: String,
    pub ready: bool,
    pub terminating: bool,
    pub containers: Vec<ContainerStatus>,
}

/// One container's state, as a kubelet would report it.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub running: bool,
    pub started: bool,
    pub ready: bool,
    pub restart_count: u32,
    pub pid: Option<u32>,
    /// Why the container is not running (CrashLoopBackOff, RunContainerError, …).
    pub waiting_reason: Option<String>,
    /// How the last run ended.
    pub last_termination: Option<String>,
    /// When the container became ready (for minReadySeconds).
    #[serde(skip)]
    pub ready_since: Option<Instant>,
    /// When the running container started (its status' `state.running.startedAt`).
    #[serde(skip)]
    pub started_at: Option<SystemTime>,
}

/// A running pod and the supervisors of its containers.
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub deployment: String,
    pub template_hash: String,
    pub ip: String,
    /// The uid of the pod's Pod object in the API.
    pub uid: String,
    pub created: Instant,
    /// The Pod object's creationTimestamp.
    pub created_at: Option<SystemTime>,
    /// When this node took the pod on (its status' `startTime`).
    pub started_at: SystemTime,
    /// The template's terminationGracePeriodSeconds.
    pub grace: Duration,
    /// Each container's image, for its status.
    pub images: Vec<String>,
    /// The status last written to the Pod object (`None`: none yet).
    pub published: Option<k8s_openapi::api::core::v1::PodStatus>,
    /// Whether the Pod object was seen in the API: one missing after that was deleted there.
    pub api_seen: bool,
    /// The pod's labels (for the Prometheus scrape targets the agent publishes).
    pub labels: BTreeMap<String, String>,
    /// `ip:port` of container ports named `http` or `metrics`: where Prometheus scrapes.
    pub metrics_endpoints: Vec<String>,
    containers: Vec<Arc<Mutex<ContainerStatus>>>,
    stop: watch::Sender<Option<Duration>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The data needed to start a pod.
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub deployment: String,
    pub template_hash: String,
    pub ip: String,
    pub labels: BTreeMap<String, String>,
    pub containers: Vec<Container>,
    pub grace: Duration,
    /// The template's runtimeClassName: `process` or `podman` (else the node's default).
    pub runtime_class: Option<String>,
    /// The pod-level securityContext (runAsUser, runAsNonRoot, fsGroup, …).
    pub security: Option<PodSecurityContext>,
    pub volumes: Vec<Volume>,
    /// The pod's serviceAccountName (`default` when unset).
    pub service_account: Option<String>,
    /// The pod's automountServiceAccountToken (unset: the ServiceAccount's, else true).
    pub automount_token: Option<bool>,
}

#[cfg(test)]
impl PodSpec {
    /// Pod `ns/p-1` of Deployment `d` at 127.10.0.2 with nothing in it; tests set what they need.
    pub fn test() -> PodSpec {
        PodSpec {
            namespace: "ns".into(),
            name: "p-1".into(),
            uid: "u".into(),
            deployment: "d".into(),
            template_hash: "h".into(),
            ip: "127.10.0.2".into(),
            labels: BTreeMap::new(),
            containers: vec![],
            grace: Duration::from_secs(1),
            runtime_class: None,
            security: None,
            volumes: vec![],
            service_account: None,
            automount_token: None,
        }
    }
}

impl Pod {
    /// Starts a supervisor per container. Containers that cannot be started report why in
    /// their status (as kubelet's waiting reasons) and are retried with backoff.
    pub fn start(spec: PodSpec, rt: &RuntimeConfig, kubelet: Kubelet) -> Pod {
        let spec = Arc::new(spec);
        let (stop, stop_rx) = watch::channel(None);
        let mut containers = Vec::new();
        let mut tasks = Vec::new();
        for container in &spec.containers {
            let status = Arc::new(Mutex::new(ContainerStatus {
                name: container.name.clone(),
                ..Default::default()
            }));
            let span = tracing::info_span!("container", pod = %spec.name, namespace = %spec.namespace, container = %container.name);
            let task = supervise(
                spec.clone(),
                container.clone(),
                rt.clone(),
                kubelet.clone(),
                status.clone(),
                stop_rx.clone(),
            );
            tasks.push(tokio::spawn(tracing::Instrument::instrument(task, span)));
            containers.push(status);
        }
        Pod {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            deployment: spec.deployment.clone(),
            template_hash: spec.template_hash.clone(),
            metrics_endpoints: spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .filter(|p| matches!(p.name.as_deref(), Some("http" | "metrics")))
                .map(|p| format!("{}:{}", spec.ip, p.container_port))
                .collect(),
            labels: spec.labels.clone(),
            ip: spec.ip.clone(),
            uid: spec.uid.clone(),
            created: Instant::now(),
            created_at: None,
            started_at: SystemTime::now(),
            grace: spec.grace,
            images: spec
                .containers
                .iter()
                .map(|c| c.image.clone().unwrap_or_default())
                .collect(),
            published: None,
            api_seen: false,
            containers,
            stop,
            tasks,
        }
    }

    pub fn statuses(&self) -> Vec<ContainerStatus> {
        self.containers
            .iter()
            .map(|c| c.lock().expect("status lock").clone())
            .collect()
    }

    pub fn is_ready(&self) -> bool {
        self.statuses().iter().all(|c| c.ready)
    }

    /// Ready for at least `min_ready` (a Deployment's minReadySeconds).
    pub fn is_available(&self, min_ready: Duration) -> bool {
        self.statuses()
            .iter()
            .all(|c| c.ready && c.ready_since.is_some_and(|t| t.elapsed() >= min_ready))
    }

    pub fn is_terminating(&self) -> bool {
        self.stop.borrow().is_some()
    }

    pub fn info(&self) -> PodInfo {
        PodInfo {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            deployment: self.deployment.clone(),
            template_hash: self.template_hash.clone(),
            ip: self.ip.clone(),
            ready: self.is_ready(),
            terminating: self.is_terminating(),
            containers: self.statuses(),
        }
    }

    /// Sends SIGKILL to every container now, as an OOM kill or a crash would; the supervisors
    /// restart them per the restart policy (always, for a Deployment's pods).
    pub fn kill_containers(&self) {
        for c in &self.containers {
            if let Some(pid) = c.lock().expect("status lock").pid {
                signal_group(pid, libc::SIGKILL);
            }
        }
    }

    /// Freezes every container with SIGSTOP and thaws it with SIGCONT after `hold`, as a VM
    /// suspension or a stalled container would (the chaos suite's pause fault). The thaw is
    /// scheduled here, so that it happens even if the caller goes away. Returns the pids frozen.
    pub fn pause(&self, hold: Duration) -> Vec<u32> {
        let pids: Vec<u32> = self
            .containers
            .iter()
            .filter_map(|c| c.lock().expect("status lock").pid)
            .collect();
        for &pid in &pids {
            signal_group(pid, libc::SIGSTOP);
        }
        let thaw = pids.clone();
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            for pid in thaw {
                signal_group(pid, libc::SIGCONT);
            }
        });
        pids
    }

    /// Terminates the pod: SIGTERM, then SIGKILL after `grace`. Resolves when every container
    /// process is gone.
    pub fn terminate(&mut self, grace: Duration) -> impl std::future::Future<Output = ()> + use<> {
        if self.stop.borrow().is_none() {
            let _ = self.stop.send(Some(grace));
        }
        let tasks = std::mem::take(&mut self.tasks);
        async move {
            for t in tasks {
                let _ = t.await;
            }
        }
    }
}
