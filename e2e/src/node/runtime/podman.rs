//! The podman runtime: each container a real OCI container (podman + runc), detached, from an
//! image in local storage (never pulled), on the host network so that it binds its pod's own
//! loopback address. Logs go to the same file as in process mode, in the CRI log format (podman's
//! k8s-file driver), as a kubelet writes them.

use std::{os::unix::fs::PermissionsExt, path::Path, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

use super::{
    super::{launch::Launch, pod::RuntimeConfig},
    PodmanConfig,
    container::{ContainerPlan, NODE_LABEL, VolumeDir, VolumeKind},
};

pub(in crate::node) struct Running {
    podman: PodmanConfig,
    id: String,
    pub(super) pid: u32,
    /// `podman wait`, started once: waiting on it is cancel-safe.
    waiter: Option<Child>,
    ended: Option<String>,
}

fn podman(cfg: &PodmanConfig) -> Command {
    let mut cmd = Command::new(&cfg.program);
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

/// Runs `podman ARGS`, returning its stdout, or its stderr as the error.
async fn output(cfg: &PodmanConfig, args: &[&str]) -> Result<String, String> {
    let out = podman(cfg)
        .args(args)
        .output()
        .await
        .map_err(|e| format!("{}: {e}", cfg.program.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Whether `podman` can be run (the tests about containers skip without it).
pub async fn podman_available(cfg: &PodmanConfig) -> bool {
    output(cfg, &["version", "--format", "{{.Client.Version}}"])
        .await
        .is_ok()
}

/// Removes every container a previous run of this node agent left (found by its label).
pub async fn cleanup_leftovers(cfg: &PodmanConfig) {
    let filter = format!("label={NODE_LABEL}={}", cfg.node_id);
    match output(cfg, &["ps", "-a", "-q", "--filter", &filter]).await {
        Ok(ids) if !ids.is_empty() => {
            let ids: Vec<&str> = ids.lines().collect();
            let mut args = vec!["rm", "-f", "-t", "0"];
            args.extend(&ids);
            match output(cfg, &args).await {
                Ok(_) => tracing::info!(count = ids.len(), "removed containers left by a previous run"),
                Err(e) => tracing::warn!(error = %e, "removing leftover containers failed"),
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "podman not usable; no leftover containers removed"),
    }
}

pub(super) async fn start(launch: &Launch, rt: &RuntimeConfig) -> Result<Running, String> {
    let cfg = &rt.podman;
    let plan: &ContainerPlan = launch.container.as_ref().map_err(Clone::clone)?;
    // Values reach podman through its own environment (`--env NAME`), never its command line.
    let env = launch.env.clone()?;
    let image_user = match output(
        cfg,
        &["image", "inspect", "--format", "{{.Config.User}}", &plan.image],
    )
    .await
    {
        Ok(u) => u,
        Err(e) if e.contains("unknown") || e.contains("no such image") || e.contains("not known") => {
            return Err(format!(
                "ErrImageNeverPull: container image {:?} is not present with pull policy of Never (build it into podman's local storage)",
                plan.image
            ));
        }
        Err(e) => return Err(format!("RunContainerError: podman image inspect: {e}")),
    };
    check_non_root(plan, &image_user)?;
    for v in &plan.volumes {
        fill_volume(v).map_err(|e| format!("CreateContainerConfigError: {e}"))?;
    }
    if let Some(dir) = launch.log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut cmd = podman(cfg);
    cmd.arg("run").arg("--detach").args(&plan.flags);
    for (k, _) in env.iter().filter(|(k, _)| k != "PATH") {
        cmd.arg(format!("--env={k}"));
    }
    cmd.envs(env.iter().filter(|(k, _)| k != "PATH").cloned());
    cmd.arg(&plan.image).args(&plan.args);
    let out = cmd
        .output()
        .await
        .map_err(|e| format!("RunContainerError: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "RunContainerError: podman run: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let pid = output(cfg, &["inspect", "--format", "{{.State.Pid}}", &id])
        .await
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or_default();
    tracing::info!(pid, container = %plan.name, id = %&id[..12.min(id.len())], image = %plan.image, "container started (podman)");
    let waiter = podman(cfg)
        .args(["wait", &id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok();
    Ok(Running {
        podman: cfg.clone(),
        id,
        pid,
        waiter,
        ended: None,
    })
}

/// The kubelet's check: runAsNonRoot with a root user (set or the image's) is refused.
fn check_non_root(plan: &ContainerPlan, image_user: &str) -> Result<(), String> {
    if !plan.run_as_non_root {
        return Ok(());
    }
    let uid = match plan.run_as_user {
        Some(u) => u.to_string(),
        None => image_user.split(':').next().unwrap_or_default().to_string(),
    };
    match uid.as_str() {
        "" | "0" | "root" => {
            Err("CreateContainerConfigError: container has runAsNonRoot and image will run as root".into())
        }
        u if u.parse::<i64>().is_err() => Err(format!(
            "CreateContainerConfigError: container has runAsNonRoot and image has non-numeric user ({u}), cannot verify user is non-root"
        )),
        _ => Ok(()),
    }
}

/// Fills a volume's host folder: a Secret's files with their mode (and fsGroup), or an empty
/// folder anyone may write.
fn fill_volume(v: &VolumeDir) -> Result<(), String> {
    let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    if v.host.exists() && matches!(v.kind, VolumeKind::EmptyDir) {
        return Ok(());
    }
    std::fs::create_dir_all(&v.host).map_err(|e| io("creating", &v.host, e))?;
    match &v.kind {
        VolumeKind::EmptyDir => std::fs::set_permissions(&v.host, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| io("chmod", &v.host, e)),
        VolumeKind::Secret {
            source,
            items,
            mode,
            fs_group,
            optional,
        } => {
            let keys: Vec<(String, String)> = match items {
                Some(items) => items.clone(),
                None => match std::fs::read_dir(source) {
                    Ok(entries) => entries
                        .flatten()
                        .filter_map(|e| e.file_name().to_str().map(|k| (k.to_string(), k.to_string())))
                        .collect(),
                    Err(_) if *optional => Vec::new(),
                    Err(_) => {
                        return Err(format!(
                            "secret {:?} not found",
                            source.file_name().unwrap_or_default()
                        ));
                    }
                },
            };
            for (key, path) in keys {
                let from = source.join(&key);
                let to = v.host.join(&path);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
                }
                let _ = std::fs::remove_file(&to);
                std::fs::copy(&from, &to).map_err(|e| io("reading secret key", &from, e))?;
                let mut m = *mode;
                if let Some(g) = fs_group {
                    std::os::unix::fs::chown(&to, Some(0), Some(*g as u32))
                        .map_err(|e| io("chown", &to, e))?;
                    m |= 0o040;
                }
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(m))
                    .map_err(|e| io("chmod", &to, e))?;
            }
            Ok(())
        }
    }
}

impl Running {
    pub(super) async fn wait(&mut self) -> String {
        if let Some(reason) = &self.ended {
            return reason.clone();
        }
        match self.waiter.as_mut() {
            Some(w) => {
                let _ = w.wait().await;
            }
            // `podman wait` could not start: poll.
            None => loop {
                let state = output(
                    &self.podman,
                    &["inspect", "--format", "{{.State.Running}}", &self.id],
                )
                .await;
                if state.as_deref() != Ok("true") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            },
        }
        let fields = output(
            &self.podman,
            &[
                "inspect",
                "--format",
                "{{.State.ExitCode}} {{.State.OOMKilled}}",
                &self.id,
            ],
        )
        .await;
        let reason = match fields.as_deref().map(|f| f.split_once(' ')) {
            Ok(Some((code, "true"))) => format!("OOMKilled: exited with code {code}"),
            Ok(Some((code, _))) => format!("exited with code {code}"),
            _ => "exited (podman inspect failed)".to_string(),
        };
        self.ended = Some(reason.clone());
        reason
    }

    pub(super) async fn terminate(&mut self, grace: Duration) {
        // `podman stop -t N`: SIGTERM (or the image's StopSignal), SIGKILL after N seconds.
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        if let Err(e) = output(&self.podman, &["stop", "-t", &secs.to_string(), &self.id]).await {
            tracing::warn!(error = %e, "podman stop failed; killing");
            let _ = output(&self.podman, &["kill", &self.id]).await;
        }
        self.wait().await;
    }

    pub(super) async fn cleanup(mut self) {
        if let Some(mut w) = self.waiter.take() {
            let _ = w.start_kill();
            let _ = w.wait().await;
        }
        if let Err(e) = output(&self.podman, &["rm", "-f", "-t", "0", &self.id]).await {
            tracing::warn!(error = %e, "podman rm failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(non_root: bool, user: Option<i64>) -> ContainerPlan {
        ContainerPlan {
            name: "n".into(),
            image: "i".into(),
            flags: vec![],
            args: vec![],
            run_as_non_root: non_root,
            run_as_user: user,
            volumes: vec![],
        }
    }

    #[test]
    fn run_as_non_root_refuses_a_root_user_as_the_kubelet_does() {
        assert!(check_non_root(&plan(false, None), "").is_ok());
        assert!(check_non_root(&plan(true, Some(65532)), "").is_ok());
        assert!(check_non_root(&plan(true, None), "65532:65532").is_ok());
        for (user, image) in [(None, ""), (None, "0"), (None, "root"), (Some(0), "65532")] {
            let err = check_non_root(&plan(true, user), image).unwrap_err();
            assert_eq!(
                err,
                "CreateContainerConfigError: container has runAsNonRoot and image will run as root"
            );
        }
        assert!(
            check_non_root(&plan(true, None), "app")
                .unwrap_err()
                .contains("non-numeric user (app)")
        );
    }

    #[test]
    fn a_secret_volume_gets_the_keys_with_their_mode_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("secret");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("token"), "t0ken").unwrap();
        let v = VolumeDir {
            host: dir.path().join("vol"),
            kind: VolumeKind::Secret {
                source: source.clone(),
                items: None,
                mode: 0o400,
                fs_group: Some(2000),
                optional: false,
            },
        };
        fill_volume(&v).unwrap();
        let meta = std::fs::metadata(dir.path().join("vol/token")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o440);
        assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), 2000);
        let missing = VolumeDir {
            host: dir.path().join("vol2"),
            kind: VolumeKind::Secret {
                source: dir.path().join("nope"),
                items: None,
                mode: 0o644,
                fs_group: None,
                optional: false,
            },
        };
        assert!(fill_volume(&missing).unwrap_err().contains("not found"));
    }
}
