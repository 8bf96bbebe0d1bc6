//! The process runtime: the image's local binary as a process in its own process group, with
//! the pod's env, its own working directory, stdout and stderr appended to the log file.

use std::{process::Stdio, time::Duration};

use tokio::process::{Child, Command};

use super::super::{launch::Launch, supervise::signal_group};

pub(in crate::node) struct Running {
    child: Child,
    pub(super) pid: u32,
}

pub(super) fn start(launch: &Launch) -> Result<Running, String> {
    let program = match &launch.program {
        Ok(p) => p.clone(),
        Err(e) => return Err(format!("ErrImagePull: {e}")),
    };
    let env = launch.env.clone()?;
    std::fs::create_dir_all(&launch.workdir).map_err(|e| format!("RunContainerError: workdir: {e}"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)
        .map_err(|e| format!("RunContainerError: log file: {e}"))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("RunContainerError: log file: {e}"))?;
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
    let child = cmd
        .spawn()
        .map_err(|e| format!("RunContainerError: {}: {e}", program.display()))?;
    let pid = child.id().unwrap_or_default();
    tracing::info!(pid, program = %program.display(), "container started");
    Ok(Running { child, pid })
}

impl Running {
    pub(super) async fn wait(&mut self) -> String {
        match self.child.wait().await {
            Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                (Some(code), _) => format!("exited with code {code}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                _ => "exited".into(),
            },
            Err(e) => format!("wait failed: {e}"),
        }
    }

    pub(super) async fn terminate(&mut self, grace: Duration) {
        let pid = self.pid;
        signal_group(pid, libc::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
            tracing::warn!(pid, grace_s = grace.as_secs_f32(), "grace period over; SIGKILL");
            signal_group(pid, libc::SIGKILL);
            let _ = self.child.wait().await;
        }
    }
}
