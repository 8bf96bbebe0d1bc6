//! Supervising a container process as a kubelet would: start it, probe it, restart it with
//! exponential backoff, terminate it gracefully.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::{process::Command, sync::watch};

use super::{
    launch::Launch,
    pod::{ContainerStatus, RuntimeConfig},
    probe::{ProbeOutcome, ProbeState, run_probe},
};

pub(super) fn signal_group(pid: u32, signal: i32) {
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
pub(super) async fn supervise(
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
