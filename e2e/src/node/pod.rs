//! A pod: one local process per container, on the pod's own loopback address, supervised as a
//! kubelet would (restart with exponential backoff, probes, graceful termination).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Container, EnvVar, Probe};
use serde::Serialize;
use tokio::{process::Command, sync::watch};

use super::probe::{ProbeOutcome, ProbeState, run_probe};

/// How the node agent runs containers; shared by every pod.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where image binaries live (`troupe/worker:tag` runs `<bin_dir>/troupe-worker`).
    pub bin_dir: PathBuf,
    /// Explicit image → executable mappings, checked before the default rule.
    pub image_map: BTreeMap<String, PathBuf>,
    /// Pod working directories, pid files and `secrets/<ns>/<name>/<key>` files.
    pub state_dir: PathBuf,
    /// One log file per container: `<logs_dir>/<namespace>_<pod>_<container>.log`.
    pub logs_dir: PathBuf,
    /// The first restart delay; doubled each time up to `backoff_max` (kubelet: 10 s, 5 min).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// What a pod is, as the node agent's API shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
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
}

/// A running pod and the supervisors of its containers.
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub deployment: String,
    pub template_hash: String,
    pub ip: String,
    pub created: Instant,
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
}

impl Pod {
    /// Starts a supervisor per container. Containers that cannot be started report why in
    /// their status (as kubelet's waiting reasons) and are retried with backoff.
    pub fn start(spec: PodSpec, rt: &RuntimeConfig) -> Pod {
        let (stop, stop_rx) = watch::channel(None);
        let mut containers = Vec::new();
        let mut tasks = Vec::new();
        for container in &spec.containers {
            let status = Arc::new(Mutex::new(ContainerStatus {
                name: container.name.clone(),
                ..Default::default()
            }));
            let launch = Launch::prepare(&spec, container, rt);
            let span = tracing::info_span!("container", pod = %spec.name, namespace = %spec.namespace, container = %container.name);
            let task = supervise(
                launch,
                container.clone(),
                spec.ip.clone(),
                spec.grace,
                rt.clone(),
                status.clone(),
                stop_rx.clone(),
            );
            tasks.push(tokio::spawn(tracing::Instrument::instrument(task, span)));
            containers.push(status);
        }
        Pod {
            namespace: spec.namespace,
            name: spec.name,
            deployment: spec.deployment,
            template_hash: spec.template_hash,
            metrics_endpoints: spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .filter(|p| matches!(p.name.as_deref(), Some("http" | "metrics")))
                .map(|p| format!("{}:{}", spec.ip, p.container_port))
                .collect(),
            labels: spec.labels.clone(),
            ip: spec.ip,
            created: Instant::now(),
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

/// How a container process is started: the executable an image maps to, args, env, files.
#[derive(Clone, Debug)]
struct Launch {
    program: Result<PathBuf, String>,
    args: Vec<String>,
    env: Result<Vec<(String, String)>, String>,
    workdir: PathBuf,
    log: PathBuf,
    pid_file: PathBuf,
}

/// `registry/path/name:tag@digest` → `name`.
pub fn image_short_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last)
}

/// The executable an image runs: an explicit mapping, else `<bin_dir>/troupe-<name>` (or
/// `<bin_dir>/<name>` when the name already starts with `troupe-`).
pub fn resolve_image(image: &str, rt: &RuntimeConfig) -> Result<PathBuf, String> {
    let without_tag = image.split('@').next().unwrap_or(image);
    let repo = match without_tag.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => without_tag,
    };
    if let Some(p) = rt.image_map.get(image).or_else(|| rt.image_map.get(repo)) {
        return Ok(p.clone());
    }
    let name = image_short_name(image);
    let file = if name.starts_with("troupe-") {
        name.to_string()
    } else {
        format!("troupe-{name}")
    };
    let path = rt.bin_dir.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "image {image:?}: no local binary {} (see docs/local-control-plane.md)",
            path.display()
        ))
    }
}

impl Launch {
    fn prepare(pod: &PodSpec, c: &Container, rt: &RuntimeConfig) -> Launch {
        let image = c.image.clone().unwrap_or_default();
        let entrypoint = resolve_image(&image, rt);
        // command replaces the image's entrypoint, args its (empty) CMD. A command naming the
        // image's own binary (by name or absolute path in the image) runs the mapped binary.
        let (program, mut args) = match c.command.as_deref() {
            Some([first, rest @ ..]) => {
                let base = Path::new(first)
                    .file_name()
                    .and_then(|s| s.to_str())
                    .unwrap_or(first);
                let program = match &entrypoint {
                    Ok(p) if p.file_name().and_then(|s| s.to_str()) == Some(base) => Ok(p.clone()),
                    _ => Ok(PathBuf::from(first)),
                };
                (program, rest.to_vec())
            }
            _ => (entrypoint, Vec::new()),
        };
        args.extend(c.args.clone().unwrap_or_default());
        let workdir = rt.state_dir.join(&pod.namespace).join(&pod.name).join(&c.name);
        Launch {
            program,
            args: args
                .iter()
                .map(|a| expand_vars(a, &c.env.clone().unwrap_or_default()))
                .collect(),
            env: container_env(pod, c, rt),
            log: rt
                .logs_dir
                .join(format!("{}_{}_{}.log", pod.namespace, pod.name, c.name)),
            pid_file: rt
                .state_dir
                .join(format!("{}_{}_{}.pid", pod.namespace, pod.name, c.name)),
            workdir,
        }
    }
}

/// `$(VAR)` in args, as the kubelet expands them from the container's plain env values.
fn expand_vars(arg: &str, env: &[EnvVar]) -> String {
    let mut out = arg.to_string();
    for e in env {
        if let Some(v) = &e.value {
            out = out.replace(&format!("$({})", e.name), v);
        }
    }
    out
}

/// The container's environment: what a real pod gets from the downward API (POD_NAME,
/// POD_NAMESPACE, POD_IP, HOSTNAME), then the template's env with `fieldRef` and
/// `secretKeyRef` resolved (secrets from `<state_dir>/secrets/<ns>/<name>/<key>`).
fn container_env(pod: &PodSpec, c: &Container, rt: &RuntimeConfig) -> Result<Vec<(String, String)>, String> {
    let mut env = vec![
        ("POD_NAME".to_string(), pod.name.clone()),
        ("POD_NAMESPACE".to_string(), pod.namespace.clone()),
        ("POD_IP".to_string(), pod.ip.clone()),
        ("HOSTNAME".to_string(), pod.name.clone()),
        ("PATH".to_string(), std::env::var("PATH").unwrap_or_default()),
    ];
    for e in c.env.clone().unwrap_or_default() {
        let value = if let Some(v) = e.value {
            v
        } else if let Some(from) = e.value_from {
            if let Some(f) = from.field_ref {
                field_value(pod, &f.field_path)
                    .ok_or_else(|| format!("env {}: unsupported fieldPath {}", e.name, f.field_path))?
            } else if let Some(s) = from.secret_key_ref {
                let path = rt
                    .state_dir
                    .join("secrets")
                    .join(&pod.namespace)
                    .join(&s.name)
                    .join(&s.key);
                match std::fs::read_to_string(&path) {
                    Ok(v) => v,
                    Err(_) if s.optional == Some(true) => continue,
                    Err(_) => {
                        return Err(format!(
                            "CreateContainerConfigError: secret {}/{} key {} not found",
                            pod.namespace, s.name, s.key
                        ));
                    }
                }
            } else {
                return Err(format!(
                    "env {}: only value, fieldRef and secretKeyRef are supported here",
                    e.name
                ));
            }
        } else {
            String::new()
        };
        env.retain(|(k, _)| k != &e.name);
        env.push((e.name, value));
    }
    Ok(env)
}

fn field_value(pod: &PodSpec, path: &str) -> Option<String> {
    match path {
        "metadata.name" => Some(pod.name.clone()),
        "metadata.namespace" => Some(pod.namespace.clone()),
        "metadata.uid" => Some(pod.uid.clone()),
        "status.podIP" | "status.hostIP" => Some(pod.ip.clone()),
        "spec.nodeName" => Some("troupe-local-node".into()),
        "spec.serviceAccountName" => Some("default".into()),
        _ => {
            let key = path.strip_prefix("metadata.labels['")?.strip_suffix("']")?;
            pod.labels.get(key).cloned()
        }
    }
}

fn signal_group(pid: u32, signal: i32) {
    // Containers run in their own process group; signal the group so children die too.
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
    unsafe {
        if libc::kill(-(pid as i32), signal) != 0 {
            libc::kill(pid as i32, signal);
        }
    }
}

fn set_status(status: &Mutex<ContainerStatus>, f: impl FnOnce(&mut ContainerStatus)) {
    f(&mut status.lock().expect("status lock"));
}

/// Runs a container until the pod is terminated: start, probe, restart with backoff.
async fn supervise(
    launch: Launch,
    container: Container,
    ip: String,
    default_grace: Duration,
    rt: RuntimeConfig,
    status: Arc<Mutex<ContainerStatus>>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let mut failures_in_a_row: u32 = 0;
    loop {
        if stop.borrow().is_some() {
            break;
        }
        let started = Instant::now();
        let outcome = run_once(&launch, &container, &ip, default_grace, &status, &mut stop).await;
        set_status(&status, |s| {
            s.running = false;
            s.ready = false;
            s.started = false;
            s.ready_since = None;
            s.pid = None;
        });
        let _ = std::fs::remove_file(&launch.pid_file);
        match outcome {
            RunEnd::Stopped => break,
            RunEnd::Exited(reason) | RunEnd::Killed(reason) => {
                tracing::warn!(%reason, "container ended; restarting per restartPolicy Always");
                set_status(&status, |s| {
                    s.restart_count += 1;
                    s.last_termination = Some(reason);
                });
            }
            RunEnd::CannotStart(reason) => {
                tracing::warn!(%reason, "container cannot start");
                set_status(&status, |s| s.waiting_reason = Some(reason));
            }
        }
        // Kubelet resets the backoff after a container ran well for a while.
        if started.elapsed() > Duration::from_secs(600) {
            failures_in_a_row = 0;
        }
        let delay = rt
            .backoff_base
            .saturating_mul(1u32 << failures_in_a_row.min(16))
            .min(rt.backoff_max);
        failures_in_a_row += 1;
        set_status(&status, |s| {
            if s.waiting_reason.is_none() || s.last_termination.is_some() {
                s.waiting_reason = Some(format!(
                    "CrashLoopBackOff: restarting in {}s",
                    delay.as_secs_f32()
                ));
            }
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => break,
        }
    }
}

enum RunEnd {
    /// The pod is being terminated.
    Stopped,
    Exited(String),
    Killed(String),
    CannotStart(String),
}

async fn run_once(
    launch: &Launch,
    container: &Container,
    ip: &str,
    default_grace: Duration,
    status: &Mutex<ContainerStatus>,
    stop: &mut watch::Receiver<Option<Duration>>,
) -> RunEnd {
    let program = match &launch.program {
        Ok(p) => p.clone(),
        Err(e) => return RunEnd::CannotStart(format!("ErrImagePull: {e}")),
    };
    let env = match &launch.env {
        Ok(env) => env.clone(),
        Err(e) => return RunEnd::CannotStart(e.clone()),
    };
    if let Err(e) = std::fs::create_dir_all(&launch.workdir) {
        return RunEnd::CannotStart(format!("RunContainerError: workdir: {e}"));
    }
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)
    {
        Ok(f) => f,
        Err(e) => return RunEnd::CannotStart(format!("RunContainerError: log file: {e}")),
    };
    let log2 = match log.try_clone() {
        Ok(f) => f,
        Err(e) => return RunEnd::CannotStart(format!("RunContainerError: log file: {e}")),
    };
    let mut cmd = Command::new(&program);
    cmd.args(&launch.args)
        .env_clear()
        .envs(env)
        .current_dir(&launch.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return RunEnd::CannotStart(format!("RunContainerError: {}: {e}", program.display()));
        }
    };
    let pid = child.id().unwrap_or_default();
    let _ = std::fs::write(&launch.pid_file, pid.to_string());
    tracing::info!(pid, program = %program.display(), "container started");
    set_status(status, |s| {
        s.running = true;
        s.pid = Some(pid);
        s.waiting_reason = None;
    });

    let probes = watch_probes(container, ip, status);
    tokio::pin!(probes);
    let grace = |stop: &watch::Receiver<Option<Duration>>| stop.borrow().unwrap_or(default_grace);
    tokio::select! {
        exit = child.wait() => {
            let reason = match exit {
                Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                    (Some(code), _) => format!("exited with code {code}"),
                    (None, Some(sig)) => format!("killed by signal {sig}"),
                    _ => "exited".into(),
                },
                Err(e) => format!("wait failed: {e}"),
            };
            RunEnd::Exited(reason)
        }
        _ = stop.changed() => {
            terminate(&mut child, pid, grace(stop)).await;
            RunEnd::Stopped
        }
        failed = &mut probes => {
            terminate(&mut child, pid, default_grace).await;
            RunEnd::Killed(failed)
        }
    }
}

/// SIGTERM, then SIGKILL once the grace period is over.
async fn terminate(child: &mut tokio::process::Child, pid: u32, grace: Duration) {
    signal_group(pid, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::warn!(pid, grace_s = grace.as_secs_f32(), "grace period over; SIGKILL");
        signal_group(pid, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

/// Runs the startup, readiness and liveness probes; resolves with a reason when the container
/// must be restarted (failed liveness or startup probe), never otherwise.
async fn watch_probes(container: &Container, ip: &str, status: &Mutex<ContainerStatus>) -> String {
    let startup = container.startup_probe.as_ref().map(ProbeState::new);
    let mut readiness = container.readiness_probe.as_ref().map(ProbeState::new);
    let mut liveness = container.liveness_probe.as_ref().map(ProbeState::new);
    let ports = container.ports.clone().unwrap_or_default();
    let probe = |p: &Probe| run_probe(p.clone(), ip.to_string(), ports.clone());

    if let Some(mut s) = startup {
        loop {
            tokio::time::sleep(s.next_delay()).await;
            match s.record(probe(s.probe()).await) {
                ProbeOutcome::Succeeded => break,
                ProbeOutcome::Failed(why) => return format!("startup probe failed: {why}"),
                ProbeOutcome::Pending => {}
            }
        }
    }
    set_status(status, |s| s.started = true);
    if readiness.is_none() {
        set_status(status, |s| {
            s.ready = true;
            s.ready_since = Some(Instant::now());
        });
    }
    if readiness.is_none() && liveness.is_none() {
        return std::future::pending().await;
    }
    loop {
        let next = [readiness.as_ref(), liveness.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| p.due_at())
            .min()
            .unwrap_or_else(Instant::now);
        tokio::time::sleep_until(next.into()).await;
        if let Some(r) = readiness.as_mut().filter(|r| r.due_at() <= Instant::now()) {
            let result = probe(r.probe()).await;
            let outcome = r.record(result);
            set_status(status, |s| {
                let ready = match outcome {
                    ProbeOutcome::Succeeded => true,
                    ProbeOutcome::Failed(_) => false,
                    ProbeOutcome::Pending => s.ready,
                };
                if ready && !s.ready {
                    s.ready_since = Some(Instant::now());
                }
                if !ready {
                    s.ready_since = None;
                }
                s.ready = ready;
            });
        }
        if let Some(l) = liveness.as_mut().filter(|l| l.due_at() <= Instant::now()) {
            let result = probe(l.probe()).await;
            if let ProbeOutcome::Failed(why) = l.record(result) {
                return format!("liveness probe failed: {why}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(bin_dir: &Path) -> RuntimeConfig {
        RuntimeConfig {
            bin_dir: bin_dir.to_path_buf(),
            image_map: BTreeMap::new(),
            state_dir: bin_dir.join("state"),
            logs_dir: bin_dir.join("logs"),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
        }
    }

    #[test]
    fn an_image_maps_to_the_local_binary_named_after_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("troupe-worker"), "").unwrap();
        let rt = rt(dir.path());
        assert_eq!(
            resolve_image("troupe/worker:0.1.0", &rt).unwrap(),
            dir.path().join("troupe-worker")
        );
        assert_eq!(
            resolve_image("registry.example.com:5000/team/worker@sha256:abc", &rt).unwrap(),
            dir.path().join("troupe-worker")
        );
        assert!(
            resolve_image("nginx:1.27", &rt)
                .unwrap_err()
                .contains("no local binary")
        );
    }

    #[test]
    fn an_explicit_mapping_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut rt = rt(dir.path());
        rt.image_map.insert("example/sleeper".into(), "/bin/sleep".into());
        assert_eq!(
            resolve_image("example/sleeper:1", &rt).unwrap(),
            PathBuf::from("/bin/sleep")
        );
    }

    #[test]
    fn downward_api_env_and_field_refs_resolve_like_a_kubelet() {
        let dir = tempfile::tempdir().unwrap();
        let pod = PodSpec {
            namespace: "ns".into(),
            name: "p-1".into(),
            uid: "u".into(),
            deployment: "d".into(),
            template_hash: "h".into(),
            ip: "127.0.10.2".into(),
            labels: [("troupe.dev/pool".to_string(), "pool-a".to_string())].into(),
            containers: vec![],
            grace: Duration::from_secs(1),
        };
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "w",
            "env": [
                {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "POOL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['troupe.dev/pool']"}}},
                {"name": "PLAIN", "value": "x"}
            ]
        }))
        .unwrap();
        let env: BTreeMap<_, _> = container_env(&pod, &c, &rt(dir.path()))
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(env["POD_NAME"], "p-1");
        assert_eq!(env["POD_NAMESPACE"], "ns");
        assert_eq!(env["POD_IP"], "127.0.10.2");
        assert_eq!(env["MY_IP"], "127.0.10.2");
        assert_eq!(env["POOL"], "pool-a");
        assert_eq!(env["PLAIN"], "x");
    }

    #[test]
    fn a_missing_secret_is_a_create_container_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let pod = PodSpec {
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u".into(),
            deployment: "d".into(),
            template_hash: "h".into(),
            ip: "127.0.10.2".into(),
            labels: BTreeMap::new(),
            containers: vec![],
            grace: Duration::from_secs(1),
        };
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "w",
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}}]
        }))
        .unwrap();
        let rt = rt(dir.path());
        assert!(
            container_env(&pod, &c, &rt)
                .unwrap_err()
                .starts_with("CreateContainerConfigError")
        );
        let secret = rt.state_dir.join("secrets/ns/s");
        std::fs::create_dir_all(&secret).unwrap();
        std::fs::write(secret.join("token"), "t0ken").unwrap();
        let env = container_env(&pod, &c, &rt).unwrap();
        assert!(env.contains(&("TOKEN".to_string(), "t0ken".to_string())));
    }
}
