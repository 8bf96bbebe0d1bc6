//! Supervising a container as a kubelet would: start it (through its runtime), probe it, restart
//! it with exponential backoff, terminate it gracefully.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::sync::watch;

use super::{
    launch::Launch,
    pod::{ContainerStatus, Kubelet, PodSpec, RuntimeConfig},
    pod_files,
    probe::{ProbeOutcome, ProbeState, run_probe},
    runtime,
};

pub(super) fn signal_group(pid: u32, signal: i32) {
    // pid 0 is "no process" here (a container podman started without telling its pid), and
    // kill(0) would signal the agent's own process group.
    if pid == 0 {
        return;
    }
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
    pod: Arc<PodSpec>,
    container: Container,
    rt: RuntimeConfig,
    kubelet: Kubelet,
    status: Arc<Mutex<ContainerStatus>>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let mut failures_in_a_row: u32 = 0;
    loop {
        if stop.borrow().is_some() {
            break;
        }
        let started = Instant::now();
        // As a kubelet, the Secrets and the token are read again for every start.
        let outcome = match pod_files::prepare(&kubelet.client, &pod, &rt, kubelet.cluster.as_ref()).await {
            Ok(files) => {
                let launch = Launch::prepare(&pod, &container, &rt, &files, kubelet.cluster.as_ref());
                let end = run_once(&launch, &container, &pod.ip, pod.grace, &rt, &status, &mut stop).await;
                let _ = std::fs::remove_file(&launch.pid_file);
                end
            }
            Err(reason) => RunEnd::CannotStart(reason),
        };
        set_status(&status, |s| {
            s.running = false;
            s.ready = false;
            s.started = false;
            s.ready_since = None;
            s.pid = None;
            s.started_at = None;
        });
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
    rt: &RuntimeConfig,
    status: &Mutex<ContainerStatus>,
    stop: &mut watch::Receiver<Option<Duration>>,
) -> RunEnd {
    // Not raced with the pod's stop: a container being created is then stopped as any other
    // (the stop is seen below at once), so that no container outlives its pod.
    let mut running = match runtime::start(launch, rt).await {
        Ok(r) => r,
        Err(reason) => return RunEnd::CannotStart(reason),
    };
    let pid = running.pid();
    let _ = std::fs::write(&launch.pid_file, pid.to_string());
    set_status(status, |s| {
        s.running = true;
        s.pid = Some(pid);
        s.waiting_reason = None;
        s.started_at = Some(std::time::SystemTime::now());
    });

    let probes = watch_probes(container, ip, status);
    tokio::pin!(probes);
    let grace = |stop: &watch::Receiver<Option<Duration>>| stop.borrow().unwrap_or(default_grace);
    let end = tokio::select! {
        reason = running.wait() => RunEnd::Exited(reason),
        _ = stop.changed() => {
            running.terminate(grace(stop)).await;
            RunEnd::Stopped
        }
        failed = &mut probes => {
            running.terminate(default_grace).await;
            RunEnd::Killed(failed)
        }
    };
    running.cleanup().await;
    end
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
