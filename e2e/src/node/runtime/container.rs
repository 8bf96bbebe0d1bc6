//! What a pod's container becomes under podman: the `podman run` flags a kubelet's CRI runtime
//! would set up from the pod spec (security context, resources, env, volumes), as a pure
//! function of the spec, so that it is unit-tested without podman.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, SecurityContext, Volume};

use super::super::{
    pod::{PodSpec, RuntimeConfig},
    pod_files::{SERVICE_ACCOUNT_MOUNT, secret_dir},
};

/// The label every container of a node agent carries (value: the agent's node id).
pub const NODE_LABEL: &str = "dev.troupe.node";

/// A container as podman will run it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerPlan {
    /// `<namespace>_<pod>_<container>`.
    pub name: String,
    pub image: String,
    /// Flags of `podman run` (before the image).
    pub flags: Vec<String>,
    /// What follows the image: the container's args (command goes to `--entrypoint`).
    pub args: Vec<String>,
    /// runAsNonRoot of the container or the pod.
    pub run_as_non_root: bool,
    /// runAsUser of the container or the pod; `None`: the image's user.
    pub run_as_user: Option<i64>,
    /// Host folders to fill before the run (Secret volumes, emptyDirs).
    pub volumes: Vec<VolumeDir>,
}

/// A host folder mounted into the container.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeDir {
    pub host: PathBuf,
    pub kind: VolumeKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum VolumeKind {
    /// The Secret's files as `pod_files.rs` wrote them from the API server, copied with `mode` (and group
    /// `fs_group`, group-readable, as the kubelet does with an fsGroup).
    Secret {
        source: PathBuf,
        items: Option<Vec<(String, String)>>,
        mode: u32,
        fs_group: Option<i64>,
        optional: bool,
    },
    /// An empty folder, writable by anyone (as the kubelet's emptyDir).
    EmptyDir,
}

/// The `podman run` plan of a container; an error is the kubelet's
/// CreateContainerConfigError with its reason.
pub fn plan(
    pod: &PodSpec,
    c: &Container,
    rt: &RuntimeConfig,
    log: &std::path::Path,
    service_account: Option<&std::path::Path>,
) -> Result<ContainerPlan, String> {
    let config_error = |m: String| format!("CreateContainerConfigError: {m}");
    let psc = pod.security.clone().unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let name = format!("{}_{}_{}", pod.namespace, pod.name, c.name);
    let mut flags: Vec<String> = vec![
        "--pull=never".into(),
        "--replace".into(),
        "--name".into(),
        name.clone(),
        // Host networking: the pod's own loopback address is its IP, as in process mode.
        "--network=host".into(),
        "--hostname".into(),
        pod.name.clone(),
        "--label".into(),
        format!("{NODE_LABEL}={}", rt.podman.node_id),
        "--label".into(),
        format!("dev.troupe.pod={}/{}", pod.namespace, pod.name),
        "--log-driver=k8s-file".into(),
        "--log-opt".into(),
        format!("path={}", log.display()),
    ];
    flags.extend(security_flags(&psc, &sc));
    flags.extend(resource_flags(c).map_err(config_error)?);
    let mut volumes = volume_flags(pod, c, rt, &psc, &mut flags).map_err(config_error)?;
    if let Some(source) = service_account {
        let mounted = c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path.trim_end_matches('/') == SERVICE_ACCOUNT_MOUNT);
        if !mounted {
            // The kubelet's projected kube-api-access volume: token, ca.crt, namespace.
            let host = rt
                .state_dir
                .join(&pod.namespace)
                .join(&pod.name)
                .join("volumes")
                .join("kube-api-access");
            flags.push("--volume".into());
            flags.push(format!("{}:{SERVICE_ACCOUNT_MOUNT}:ro", host.display()));
            volumes.push(VolumeDir {
                host,
                kind: VolumeKind::Secret {
                    source: source.to_path_buf(),
                    items: None,
                    mode: 0o644,
                    fs_group: psc.fs_group,
                    optional: false,
                },
            });
        }
    }
    if let Some(command) = &c.command {
        flags.push(format!(
            "--entrypoint={}",
            serde_json::to_string(command).expect("strings serialize")
        ));
    }
    if let Some(dir) = &c.working_dir {
        flags.push(format!("--workdir={dir}"));
    }
    Ok(ContainerPlan {
        name,
        image: c.image.clone().unwrap_or_default(),
        flags,
        args: c.args.clone().unwrap_or_default(),
        run_as_non_root: sc.run_as_non_root.or(psc.run_as_non_root).unwrap_or(false),
        run_as_user: sc.run_as_user.or(psc.run_as_user),
        volumes,
    })
}

/// user, groups, read-only root, capabilities, privilege escalation (container fields win over
/// the pod's).
fn security_flags(psc: &PodSecurityContext, sc: &SecurityContext) -> Vec<String> {
    let mut flags = Vec::new();
    let user = sc.run_as_user.or(psc.run_as_user);
    let group = sc.run_as_group.or(psc.run_as_group);
    match (user, group) {
        (Some(u), Some(g)) => flags.push(format!("--user={u}:{g}")),
        (Some(u), None) => flags.push(format!("--user={u}")),
        // A group without a user: the image's user, in that group (as the CRI does).
        (None, Some(g)) => flags.push(format!("--group-add={g}")),
        (None, None) => {}
    }
    for g in psc
        .fs_group
        .iter()
        .chain(psc.supplemental_groups.iter().flatten())
    {
        flags.push(format!("--group-add={g}"));
    }
    if sc.read_only_root_filesystem == Some(true) {
        // Kubernetes mounts no tmpfs on /tmp, /run, /var/tmp: neither do we.
        flags.push("--read-only".into());
        flags.push("--read-only-tmpfs=false".into());
    }
    if sc.privileged == Some(true) {
        flags.push("--privileged".into());
    }
    if let Some(caps) = &sc.capabilities {
        for d in caps.drop.iter().flatten() {
            flags.push(format!("--cap-drop={d}"));
        }
        for a in caps.add.iter().flatten() {
            flags.push(format!("--cap-add={a}"));
        }
    }
    if sc.allow_privilege_escalation == Some(false) {
        flags.push("--security-opt=no-new-privileges".into());
    }
    flags
}

/// Memory and CPU limits as cgroup settings; swap off as on a kubelet's node.
fn resource_flags(c: &Container) -> Result<Vec<String>, String> {
    let mut flags = Vec::new();
    let limits = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    if let Some(q) = limits.get("memory") {
        let bytes = parse_memory(&q.0).ok_or_else(|| format!("limits.memory {:?}: not a quantity", q.0))?;
        flags.push(format!("--memory={bytes}b"));
        flags.push(format!("--memory-swap={bytes}b"));
    }
    if let Some(q) = limits.get("cpu") {
        let cpus = parse_cpu(&q.0).ok_or_else(|| format!("limits.cpu {:?}: not a quantity", q.0))?;
        flags.push(format!("--cpus={cpus}"));
    }
    Ok(flags)
}

fn volume_flags(
    pod: &PodSpec,
    c: &Container,
    rt: &RuntimeConfig,
    psc: &PodSecurityContext,
    flags: &mut Vec<String>,
) -> Result<Vec<VolumeDir>, String> {
    let mut dirs = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let v: &Volume = pod
            .volumes
            .iter()
            .find(|v| v.name == m.name)
            .ok_or_else(|| format!("volumeMount {:?}: no volume of that name", m.name))?;
        if m.sub_path.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(format!("volumeMount {:?}: subPath is not supported here", m.name));
        }
        let host = rt
            .state_dir
            .join(&pod.namespace)
            .join(&pod.name)
            .join("volumes")
            .join(&v.name);
        let (kind, read_only) = if let Some(s) = &v.secret {
            let secret = s.secret_name.clone().unwrap_or_default();
            let kind = VolumeKind::Secret {
                source: secret_dir(rt, pod, &secret),
                items: s
                    .items
                    .as_ref()
                    .map(|items| items.iter().map(|i| (i.key.clone(), i.path.clone())).collect()),
                mode: s.default_mode.unwrap_or(0o644) as u32 & 0o777,
                fs_group: psc.fs_group,
                optional: s.optional == Some(true),
            };
            // Secret volumes are always read-only.
            (kind, true)
        } else if v.empty_dir.is_some() {
            (VolumeKind::EmptyDir, m.read_only == Some(true))
        } else {
            return Err(format!(
                "volume {:?}: only secret and emptyDir volumes are supported here",
                v.name
            ));
        };
        let mut spec = format!("{}:{}", host.display(), m.mount_path);
        if read_only {
            spec.push_str(":ro");
        }
        flags.push("--volume".into());
        flags.push(spec);
        if !dirs.iter().any(|d: &VolumeDir| d.host == host) {
            dirs.push(VolumeDir { host, kind });
        }
    }
    Ok(dirs)
}

/// A memory quantity in bytes: `64Mi`, `1G`, `1e9`, `500000`.
pub fn parse_memory(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|ch: char| ch.is_ascii_alphabetic() && ch != 'e' && ch != 'E')
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let factor: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "m" => 1e-3,
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    (n.is_finite() && n >= 0.0).then(|| (n * factor).ceil() as u64)
}

/// A CPU quantity in CPUs: `500m` → 0.5, `2` → 2.
pub fn parse_cpu(q: &str) -> Option<f64> {
    let q = q.trim();
    let n = match q.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok()? / 1000.0,
        None => q.parse::<f64>().ok()?,
    };
    (n.is_finite() && n > 0.0).then_some(n)
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use super::*;
    use crate::node::runtime::PodmanConfig;

    fn pod(security: serde_json::Value, volumes: serde_json::Value) -> PodSpec {
        PodSpec {
            security: serde_json::from_value(security).unwrap(),
            volumes: serde_json::from_value(volumes).unwrap(),
            ..PodSpec::test()
        }
    }

    fn rt() -> RuntimeConfig {
        RuntimeConfig {
            bin_dir: "/bin".into(),
            image_map: BTreeMap::new(),
            state_dir: "/state".into(),
            logs_dir: "/logs".into(),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
            default_runtime: Default::default(),
            podman: PodmanConfig {
                program: "podman".into(),
                node_id: "node-1".into(),
            },
        }
    }

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_chart_security_context_becomes_podman_flags() {
        let p = pod(
            serde_json::json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532}),
            serde_json::json!([]),
        );
        let c = container(serde_json::json!({
            "name": "op", "image": "troupe/operator:0.1.0",
            "command": ["/troupe-operator"], "args": ["--x"],
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
            "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}
        }));
        let plan = plan(&p, &c, &rt(), "/logs/x.log".as_ref(), None).unwrap();
        for flag in [
            "--user=65532:65532",
            "--group-add=65532",
            "--read-only",
            "--read-only-tmpfs=false",
            "--cap-drop=ALL",
            "--cap-add=NET_BIND_SERVICE",
            "--security-opt=no-new-privileges",
            "--memory=67108864b",
            "--memory-swap=67108864b",
            "--cpus=0.5",
            "--network=host",
            "--pull=never",
            "--entrypoint=[\"/troupe-operator\"]",
            "dev.troupe.node=node-1",
            "path=/logs/x.log",
        ] {
            assert!(
                plan.flags.iter().any(|f| f == flag),
                "{flag} missing from {:?}",
                plan.flags
            );
        }
        assert_eq!(plan.name, "ns_p-1_op");
        assert_eq!(plan.args, ["--x"]);
        assert!(plan.run_as_non_root);
        assert_eq!(plan.run_as_user, Some(65532));
    }

    #[test]
    fn the_container_security_context_wins_over_the_pod() {
        let p = pod(
            serde_json::json!({"runAsUser": 1000, "runAsNonRoot": true}),
            serde_json::json!([]),
        );
        let c = container(serde_json::json!({"name": "c", "image": "i",
            "securityContext": {"runAsUser": 0, "runAsNonRoot": false}}));
        let plan = plan(&p, &c, &rt(), "/l".as_ref(), None).unwrap();
        assert!(plan.flags.contains(&"--user=0".to_string()));
        assert!(!plan.run_as_non_root);
        assert_eq!(plan.run_as_user, Some(0));
    }

    #[test]
    fn secret_and_empty_dir_volumes_mount_host_folders() {
        let p = pod(
            serde_json::json!({"fsGroup": 2000}),
            serde_json::json!([
                {"name": "token", "secret": {"secretName": "alerts", "defaultMode": 0o400}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "cm", "configMap": {"name": "x"}}
            ]),
        );
        let c = container(serde_json::json!({"name": "c", "image": "i", "volumeMounts": [
            {"name": "token", "mountPath": "/var/run/token"},
            {"name": "tmp", "mountPath": "/tmp"}
        ]}));
        let plan = plan(&p, &c, &rt(), "/l".as_ref(), None).unwrap();
        assert!(
            plan.flags
                .contains(&"/state/ns/p-1/volumes/token:/var/run/token:ro".to_string())
        );
        assert!(plan.flags.contains(&"/state/ns/p-1/volumes/tmp:/tmp".to_string()));
        assert_eq!(
            plan.volumes[0].kind,
            VolumeKind::Secret {
                source: "/state/ns/p-1/secrets/alerts".into(),
                items: None,
                mode: 0o400,
                fs_group: Some(2000),
                optional: false
            }
        );
        let bad = container(serde_json::json!({"name": "c", "image": "i", "volumeMounts": [
            {"name": "cm", "mountPath": "/etc/cm"}]}));
        let err = super::plan(&p, &bad, &rt(), "/l".as_ref(), None).unwrap_err();
        assert!(
            err.starts_with("CreateContainerConfigError: volume \"cm\""),
            "{err}"
        );
        let missing = container(serde_json::json!({"name": "c", "image": "i", "volumeMounts": [
            {"name": "nope", "mountPath": "/x"}]}));
        assert!(super::plan(&p, &missing, &rt(), "/l".as_ref(), None).is_err());
    }

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        assert_eq!(parse_memory("64Mi"), Some(64 << 20));
        assert_eq!(parse_memory("1G"), Some(1_000_000_000));
        assert_eq!(parse_memory("1e3"), Some(1000));
        assert_eq!(parse_memory("128974848"), Some(128974848));
        assert_eq!(parse_memory("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_memory("12Q"), None);
        assert_eq!(parse_cpu("500m"), Some(0.5));
        assert_eq!(parse_cpu("2"), Some(2.0));
        assert_eq!(parse_cpu("0.25"), Some(0.25));
        assert_eq!(parse_cpu("x"), None);
    }

    #[test]
    fn a_service_account_token_is_mounted_where_in_cluster_config_reads_it_unless_the_pod_mounts_its_own() {
        let p = pod(
            serde_json::json!({"fsGroup": 65532}),
            serde_json::json!([{"name": "own", "emptyDir": {}}]),
        );
        let c = container(serde_json::json!({"name": "c", "image": "i"}));
        let with_token = plan(
            &p,
            &c,
            &rt(),
            "/l".as_ref(),
            Some("/state/ns/p-1/serviceaccount".as_ref()),
        )
        .unwrap();
        assert!(
            with_token.flags.contains(
                &"/state/ns/p-1/volumes/kube-api-access:/var/run/secrets/kubernetes.io/serviceaccount:ro"
                    .to_string()
            )
        );
        assert_eq!(
            with_token.volumes,
            [VolumeDir {
                host: "/state/ns/p-1/volumes/kube-api-access".into(),
                kind: VolumeKind::Secret {
                    source: "/state/ns/p-1/serviceaccount".into(),
                    items: None,
                    mode: 0o644,
                    fs_group: Some(65532),
                    optional: false,
                },
            }]
        );
        let own = container(serde_json::json!({"name": "c", "image": "i", "volumeMounts": [
            {"name": "own", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount/"}
        ]}));
        let own_plan = plan(
            &p,
            &own,
            &rt(),
            "/l".as_ref(),
            Some("/state/ns/p-1/serviceaccount".as_ref()),
        )
        .unwrap();
        assert!(
            !own_plan.flags.iter().any(|f| f.contains("kube-api-access")),
            "{:?}",
            own_plan.flags
        );
    }
}
