//! Container runtimes of the node agent: how a container is started, waited for, terminated and
//! cleaned up. Two kinds behind one interface:
//! - `process` (the default): the image maps to a local binary, run as a process in its own
//!   process group (fast; no isolation);
//! - `podman`: a real OCI container (podman + runc) from an image in local storage, with the
//!   security context, resource limits and Secret volumes applied (see `container.rs`).
//!
//! A pod picks its runtime with `runtimeClassName` (`process`, `podman`), as a cluster picks a
//! RuntimeClass; without one it gets the node's default (`--runtime`).

mod container;
mod podman;
mod process;

use std::{path::PathBuf, time::Duration};

pub use container::{ContainerPlan, parse_cpu, parse_memory, plan};
pub use podman::{cleanup_leftovers, podman_available};

use super::{launch::Launch, pod::RuntimeConfig};

/// Which runtime runs a pod's containers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuntimeKind {
    #[default]
    Process,
    Podman,
}

impl std::str::FromStr for RuntimeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "process" => Ok(RuntimeKind::Process),
            "podman" | "runc" => Ok(RuntimeKind::Podman),
            other => Err(format!(
                "unknown runtime {other:?} (this node has: process, podman)"
            )),
        }
    }
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RuntimeKind::Process => "process",
            RuntimeKind::Podman => "podman",
        })
    }
}

/// The runtime a pod runs on: its `runtimeClassName`, else the node's default. An unknown class
/// is an error, as a missing RuntimeClass is for a real pod.
pub fn runtime_for(class: Option<&str>, default: RuntimeKind) -> Result<RuntimeKind, String> {
    match class {
        None | Some("") => Ok(default),
        Some(c) => c
            .parse()
            .map_err(|e| format!("CreateContainerConfigError: runtimeClassName: {e}")),
    }
}

/// A started container.
pub(super) enum Running {
    Process(process::Running),
    Container(podman::Running),
}

/// Starts one run of a container, or says why it cannot (a kubelet waiting reason).
pub(super) async fn start(launch: &Launch, rt: &RuntimeConfig) -> Result<Running, String> {
    match &launch.runtime {
        Err(e) => Err(e.clone()),
        Ok(RuntimeKind::Process) => process::start(launch).map(Running::Process),
        Ok(RuntimeKind::Podman) => podman::start(launch, rt).await.map(Running::Container),
    }
}

impl Running {
    /// The host pid of the container's main process (signals, pause).
    pub(super) fn pid(&self) -> u32 {
        match self {
            Running::Process(r) => r.pid,
            Running::Container(r) => r.pid,
        }
    }

    /// Resolves when the container has ended, with how it ended ("exited with code 3",
    /// "OOMKilled: exited with code 137", …). Cancel-safe: may be raced and called again.
    pub(super) async fn wait(&mut self) -> String {
        match self {
            Running::Process(r) => r.wait().await,
            Running::Container(r) => r.wait().await,
        }
    }

    /// SIGTERM, then SIGKILL once `grace` is over; resolves when the container is gone.
    pub(super) async fn terminate(&mut self, grace: Duration) {
        match self {
            Running::Process(r) => r.terminate(grace).await,
            Running::Container(r) => r.terminate(grace).await,
        }
    }

    /// Releases what the run held (a container's record in podman's storage).
    pub(super) async fn cleanup(self) {
        if let Running::Container(r) = self {
            r.cleanup().await;
        }
    }
}

/// The podman executable and the label that marks this node agent's containers.
#[derive(Clone, Debug)]
pub struct PodmanConfig {
    pub program: PathBuf,
    /// Value of the `dev.troupe.node` label on every container this agent starts (its state
    /// directory): leftovers of a previous run are found by it and removed at start.
    pub node_id: String,
}
