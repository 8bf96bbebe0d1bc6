//! How a container process is started: the local executable an image maps to, its args, and
//! its env as a kubelet would build it (downward API, Secrets, ConfigMaps).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Container;

use super::{
    pod::{PodSpec, RuntimeConfig},
    pod_files::{self, ClusterAccess, PodFiles},
    runtime::{self, ContainerPlan, RuntimeKind},
};

/// How a container process is started: the executable an image maps to, args, env, files.
#[derive(Clone, Debug)]
pub(super) struct Launch {
    pub(super) program: Result<PathBuf, String>,
    pub(super) args: Vec<String>,
    pub(super) env: Result<Vec<(String, String)>, String>,
    pub(super) workdir: PathBuf,
    pub(super) log: PathBuf,
    pub(super) pid_file: PathBuf,
    /// The runtime the pod runs on (its runtimeClassName, else the node's default).
    pub(super) runtime: Result<RuntimeKind, String>,
    /// The container as podman runs it (podman runtime only).
    pub(super) container: Result<ContainerPlan, String>,
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
    pub(super) fn prepare(
        pod: &PodSpec,
        c: &Container,
        rt: &RuntimeConfig,
        files: &PodFiles,
        cluster: Option<&ClusterAccess>,
    ) -> Launch {
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
        let log = rt
            .logs_dir
            .join(format!("{}_{}_{}.log", pod.namespace, pod.name, c.name));
        let env = container_env(pod, c, rt).map(|mut env| {
            // What a kubelet puts in every container: where the API server is.
            if let (Some(_), Some(cluster)) = (&files.service_account, cluster) {
                env.retain(|(k, _)| !k.starts_with("KUBERNETES_SERVICE_"));
                env.push(("KUBERNETES_SERVICE_HOST".into(), cluster.host.clone()));
                env.push(("KUBERNETES_SERVICE_PORT".into(), cluster.port.to_string()));
            }
            env
        });
        // `$(VAR)` is expanded from the container's env as resolved (fieldRefs included).
        let vars = env.clone().unwrap_or_default();
        let runtime = runtime::runtime_for(pod.runtime_class.as_deref(), rt.default_runtime);
        let container = match runtime {
            Ok(RuntimeKind::Podman) => {
                let mut c = c.clone();
                let expand = |v: &Vec<String>| v.iter().map(|a| expand_vars(a, &vars)).collect();
                c.command = c.command.as_ref().map(expand);
                c.args = c.args.as_ref().map(expand);
                runtime::plan(pod, &c, rt, &log, files.service_account.as_deref())
            }
            _ => Err("not a podman container".into()),
        };
        Launch {
            program,
            args: args.iter().map(|a| expand_vars(a, &vars)).collect(),
            env,
            log,
            runtime,
            container,
            pid_file: rt
                .state_dir
                .join(format!("{}_{}_{}.pid", pod.namespace, pod.name, c.name)),
            workdir,
        }
    }
}

/// `$(VAR)` in command and args, as the kubelet expands them from the container's env.
fn expand_vars(arg: &str, env: &[(String, String)]) -> String {
    let mut out = arg.to_string();
    for (name, value) in env {
        out = out.replace(&format!("$({name})"), value);
    }
    out
}

/// The container's environment: what a real pod gets from the downward API (POD_NAME,
/// POD_NAMESPACE, POD_IP, HOSTNAME), then the template's env with `fieldRef` and
/// `secretKeyRef` resolved (from the files `pod_files.rs` wrote from the API server).
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
                let path = pod_files::secret_dir(rt, pod, &s.name).join(&s.key);
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
        "spec.nodeName" => Some(super::publish::NODE_NAME.into()),
        "spec.serviceAccountName" => Some("default".into()),
        _ => {
            let key = path.strip_prefix("metadata.labels['")?.strip_suffix("']")?;
            pod.labels.get(key).cloned()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use super::*;

    fn rt(bin_dir: &Path) -> RuntimeConfig {
        RuntimeConfig {
            bin_dir: bin_dir.to_path_buf(),
            image_map: BTreeMap::new(),
            state_dir: bin_dir.join("state"),
            logs_dir: bin_dir.join("logs"),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
            default_runtime: RuntimeKind::Process,
            podman: runtime::PodmanConfig {
                program: "podman".into(),
                node_id: "test".into(),
            },
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
            ip: "127.0.10.2".into(),
            labels: [("troupe.dev/pool".to_string(), "pool-a".to_string())].into(),
            ..PodSpec::test()
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
    fn a_secret_key_not_written_for_the_pod_is_a_create_container_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let pod = PodSpec {
            name: "p".into(),
            ip: "127.0.10.2".into(),
            ..PodSpec::test()
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
        let secret = pod_files::secret_dir(&rt, &pod, "s");
        std::fs::create_dir_all(&secret).unwrap();
        std::fs::write(secret.join("token"), "t0ken").unwrap();
        let env = container_env(&pod, &c, &rt).unwrap();
        assert!(env.contains(&("TOKEN".to_string(), "t0ken".to_string())));
    }

    #[test]
    fn args_expand_the_resolved_env_field_refs_included_as_a_kubelet_does() {
        let dir = tempfile::tempdir().unwrap();
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "op", "image": "troupe/operator:1",
            "args": ["--listen=$(POD_IP):8080", "--me=$(ME)", "$(UNSET)"],
            "env": [{"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
        }))
        .unwrap();
        let launch = Launch::prepare(&PodSpec::test(), &c, &rt(dir.path()), &PodFiles::default(), None);
        assert_eq!(launch.args, ["--listen=127.10.0.2:8080", "--me=p-1", "$(UNSET)"]);
    }
}
