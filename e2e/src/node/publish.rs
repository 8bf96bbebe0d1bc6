//! The node agent's pods as Pod objects in the API: what the ReplicaSet controller creates for
//! a Deployment's replica (the template's labels and annotations plus `pod-template-hash`, an
//! ownerReference to the Deployment, the node's name) and the status a kubelet keeps current
//! (phase, podIP, conditions, containerStatuses). Pure functions; `pods_api.rs` writes them.

use std::time::SystemTime;

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{
            ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
            ContainerStatus as ApiContainerStatus, HostIP, Pod as ApiPod, PodCondition, PodIP, PodStatus,
        },
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time},
    jiff::Timestamp,
};

use super::{
    deployment::{PodFacts, deletion_cost},
    pod::{ContainerStatus, Pod},
};

/// The node's name: every Pod's `spec.nodeName` (also what the downward API gives).
pub const NODE_NAME: &str = "troupe-local-node";

/// The label that tells the pods of one template apart (a ReplicaSet's, upstream).
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// `status.hostIP`: pods run on loopback addresses of this one machine.
const HOST_IP: &str = "127.0.0.1";

/// The Pod object of a new replica of `d` named `name`, as the ReplicaSet controller would
/// create it (already bound to this node, as the scheduler would bind it). `hash` is the short
/// template hash the pod's name carries.
pub fn pod_object(d: &Deployment, name: &str, hash: &str) -> ApiPod {
    let template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut spec = template.spec.unwrap_or_default();
    spec.node_name = Some(NODE_NAME.into());
    ApiPod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: d.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations,
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: d.metadata.name.clone().unwrap_or_default(),
                uid: d.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// A wall-clock time as the API keeps it (whole seconds).
pub fn time(t: SystemTime) -> Time {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Time(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn system_time(t: &Time) -> SystemTime {
    SystemTime::from(t.0)
}

/// Pending until a container has started, then Running (restartPolicy Always: a container
/// that ended is restarted, so the pod stays Running), as a kubelet reports it.
pub fn phase(containers: &[ContainerStatus]) -> &'static str {
    let started = containers
        .iter()
        .any(|c| c.running || c.restart_count > 0 || c.last_termination.is_some());
    if started { "Running" } else { "Pending" }
}

/// The status a kubelet would write for a pod whose containers are `containers` (with their
/// images), the pod on `ip` since `start`. Transition times are kept from `prev` (the status
/// written before) for conditions that did not change, so an unchanged pod gives the same
/// status and costs no write.
pub fn pod_status(
    ip: &str,
    start: SystemTime,
    containers: &[(String, ContainerStatus)],
    prev: Option<&PodStatus>,
    now: SystemTime,
) -> PodStatus {
    let all_ready = containers.iter().all(|(_, c)| c.ready);
    let condition = |type_: &str, ok: bool, since: SystemTime| {
        let status = if ok { "True" } else { "False" }.to_string();
        let kept = prev
            .and_then(|p| p.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == status))
            .and_then(|c| c.last_transition_time.clone());
        PodCondition {
            type_: type_.into(),
            reason: (!ok).then(|| "ContainersNotReady".to_string()),
            status,
            last_transition_time: Some(kept.unwrap_or_else(|| time(since))),
            ..Default::default()
        }
    };
    let statuses: Vec<ContainerStatus> = containers.iter().map(|(_, c)| c.clone()).collect();
    PodStatus {
        phase: Some(phase(&statuses).into()),
        host_ip: Some(HOST_IP.into()),
        host_ips: Some(vec![HostIP { ip: HOST_IP.into() }]),
        pod_ip: Some(ip.into()),
        pod_ips: Some(vec![PodIP { ip: ip.into() }]),
        start_time: Some(time(start)),
        qos_class: Some("BestEffort".into()),
        conditions: Some(vec![
            condition("PodScheduled", true, start),
            condition("Initialized", true, start),
            condition("ContainersReady", all_ready, now),
            condition("Ready", all_ready, now),
        ]),
        container_statuses: Some(
            containers
                .iter()
                .map(|(image, c)| container_status(image, c))
                .collect(),
        ),
        ..Default::default()
    }
}

fn container_status(image: &str, c: &ContainerStatus) -> ApiContainerStatus {
    let state = if c.running {
        ContainerState {
            running: Some(ContainerStateRunning {
                started_at: c.started_at.map(time),
            }),
            ..Default::default()
        }
    } else {
        let (reason, message) = match &c.waiting_reason {
            Some(why) => split_reason(why),
            None => ("ContainerCreating".into(), None),
        };
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason),
                message,
            }),
            ..Default::default()
        }
    };
    ApiContainerStatus {
        name: c.name.clone(),
        image: image.into(),
        // No registry here: the image's name is all there is to tell it by.
        image_id: image.into(),
        ready: c.ready,
        started: Some(c.started),
        restart_count: c.restart_count as i32,
        state: Some(state),
        last_state: c.last_termination.as_deref().map(|how| ContainerState {
            terminated: Some(terminated(how)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// "CrashLoopBackOff: restarting in 10s" → (CrashLoopBackOff, the rest): the agent's waiting
/// reasons start with the kubelet's reason; anything else is a CreateContainerError.
fn split_reason(why: &str) -> (String, Option<String>) {
    match why.split_once(": ") {
        Some((reason, rest))
            if reason.starts_with(|c: char| c.is_ascii_uppercase())
                && reason.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            (reason.into(), Some(rest.into()))
        }
        _ => ("CreateContainerError".into(), Some(why.into())),
    }
}

/// How a run ended, from the runtime's words ("exited with code 3", "killed by signal 9",
/// "OOMKilled: exited with code 137", "liveness probe failed: …").
fn terminated(how: &str) -> ContainerStateTerminated {
    let code_after = |prefix: &str| {
        how.rsplit_once(prefix)
            .and_then(|(_, n)| n.trim().parse::<i32>().ok())
    };
    let signal = code_after("killed by signal ");
    // A container killed for a failed probe got SIGKILL after its grace period, at worst.
    let exit_code = code_after("exited with code ")
        .or(signal.map(|s| 128 + s))
        .unwrap_or(137);
    let reason = if how.starts_with("OOMKilled") {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    ContainerStateTerminated {
        exit_code,
        signal,
        reason: Some(reason.into()),
        message: Some(how.into()),
        ..Default::default()
    }
}

/// What the Deployment controller ranks a pod by: its state on this node, the status written
/// for it (when it became ready), and its Pod object (creationTimestamp, pod-deletion-cost).
pub fn facts(pod: &Pod, object: Option<&ApiPod>) -> PodFacts {
    let statuses = pod.statuses();
    let ready_since = pod
        .published
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(system_time);
    let ready = statuses.iter().all(|c| c.ready);
    PodFacts {
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        hash: pod.template_hash.clone(),
        terminating: pod.is_terminating(),
        running: phase(&statuses) == "Running",
        ready,
        // Ready but not yet written: ready since now, the newest there is.
        ready_since: if ready {
            ready_since.or(Some(SystemTime::now()))
        } else {
            None
        },
        restarts: statuses.iter().map(|c| c.restart_count).max().unwrap_or(0),
        created: object
            .and_then(|o| o.metadata.creation_timestamp.as_ref())
            .map(system_time)
            .or(pod.created_at),
        deletion_cost: object
            .and_then(|o| o.metadata.annotations.as_ref())
            .map_or(0, deletion_cost),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn running(ready: bool) -> ContainerStatus {
        ContainerStatus {
            name: "app".into(),
            running: true,
            started: true,
            ready,
            started_at: Some(at(1)),
            ..Default::default()
        }
    }

    fn condition<'a>(s: &'a PodStatus, type_: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap()
    }

    #[test]
    fn a_new_pod_is_pending_with_its_container_creating() {
        let c = ContainerStatus {
            name: "app".into(),
            ..Default::default()
        };
        let s = pod_status(
            "127.10.0.2",
            at(0),
            &[("troupe/testpod:1".into(), c)],
            None,
            at(0),
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(s.pod_ip.as_deref(), Some("127.10.0.2"));
        assert_eq!(condition(&s, "Ready").status, "False");
        let state = s.container_statuses.unwrap()[0].state.clone().unwrap();
        assert_eq!(
            state.waiting.unwrap().reason.as_deref(),
            Some("ContainerCreating")
        );
    }

    #[test]
    fn a_ready_pod_keeps_its_transition_times_so_an_unchanged_pod_needs_no_write() {
        let containers = [("img".to_string(), running(true))];
        let first = pod_status("127.10.0.2", at(0), &containers, None, at(2));
        assert_eq!(first.phase.as_deref(), Some("Running"));
        assert_eq!(condition(&first, "Ready").status, "True");
        assert_eq!(condition(&first, "Ready").last_transition_time, Some(time(at(2))));
        let later = pod_status("127.10.0.2", at(0), &containers, Some(&first), at(60));
        assert_eq!(later, first);
        let unready = [("img".to_string(), running(false))];
        let changed = pod_status("127.10.0.2", at(0), &unready, Some(&first), at(61));
        assert_eq!(condition(&changed, "Ready").status, "False");
        assert_eq!(
            condition(&changed, "Ready").last_transition_time,
            Some(time(at(61)))
        );
        assert_eq!(
            condition(&changed, "PodScheduled").last_transition_time,
            Some(time(at(0)))
        );
    }

    #[test]
    fn a_crashed_container_reports_its_backoff_and_how_its_last_run_ended() {
        let c = ContainerStatus {
            name: "app".into(),
            restart_count: 2,
            waiting_reason: Some("CrashLoopBackOff: restarting in 20s".into()),
            last_termination: Some("exited with code 3".into()),
            ..Default::default()
        };
        let s = pod_status("127.10.0.2", at(0), &[("img".into(), c)], None, at(5));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 2);
        let waiting = cs.state.clone().unwrap().waiting.unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(waiting.message.as_deref(), Some("restarting in 20s"));
        let last = cs.last_state.clone().unwrap().terminated.unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    }

    #[test]
    fn runtime_words_become_the_kubelets_reasons_and_exit_codes() {
        assert_eq!(
            split_reason("ErrImagePull: image \"x\": no local binary").0,
            "ErrImagePull"
        );
        assert_eq!(
            split_reason("env X: unsupported fieldPath y").0,
            "CreateContainerError"
        );
        let t = terminated("killed by signal 9");
        assert_eq!((t.exit_code, t.signal), (137, Some(9)));
        assert_eq!(
            terminated("OOMKilled: exited with code 137").reason.as_deref(),
            Some("OOMKilled")
        );
        assert_eq!(
            terminated("exited with code 0").reason.as_deref(),
            Some("Completed")
        );
    }

    #[test]
    fn a_pod_object_carries_the_template_the_hash_label_its_owner_and_the_node() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "app", "image": "troupe/testpod:1"}]}}}
        }))
        .unwrap();
        let p = pod_object(&d, "web-0123456789-abcde", "0123456789");
        let labels = p.metadata.labels.unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[TEMPLATE_HASH_LABEL], "0123456789");
        assert_eq!(p.metadata.annotations.unwrap()["a"], "b");
        let owner = &p.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Deployment", "d-uid", Some(true))
        );
        assert_eq!(p.spec.unwrap().node_name.as_deref(), Some(NODE_NAME));
    }
}
