//! The Deployment controller's pass over one Deployment: plan (`deployment.rs`), create the new
//! pods — their Pod objects first, then their containers — retire the pods the plan lets go,
//! and write the Deployment's status.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod as ApiPod};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};

use super::{
    Deletion, MANAGER, Node, NodeState,
    deployment::{DeploymentKey, PlanStep, plan, status_for, template_hash},
    pod::{self, Pod, PodSpec},
    pods_api, publish, random_suffix, remove_pod,
};

/// One Deployment's pass. `objects` are the node's Pod objects by uid (their deletion costs).
pub(super) async fn sync_one(
    node: &Arc<Node>,
    d: &Deployment,
    key: &DeploymentKey,
    objects: &BTreeMap<String, Arc<ApiPod>>,
) -> anyhow::Result<()> {
    let spec = d.spec.clone().unwrap_or_default();
    let hash = template_hash(&spec.template);
    let grace = Duration::from_secs(
        spec.template
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64,
    );
    let min_ready = Duration::from_secs(spec.min_ready_seconds.unwrap_or(0).max(0) as u64);
    let replicas = spec.replicas.unwrap_or(1);
    let plan_now = |state: &NodeState, objects: &BTreeMap<String, Arc<ApiPod>>| {
        let facts: Vec<_> = state
            .pods
            .values()
            .filter(|p| p.namespace == key.namespace && p.deployment == key.name)
            .map(|p| publish::facts(p, objects.get(&p.uid).map(|o| o.as_ref())))
            .collect();
        plan(replicas, &hash, &facts, SystemTime::now())
    };
    // Before pods are deleted, their deletion costs are read from the API as they are now (a
    // pod annotated a moment ago may not have come through the watch yet).
    let deletes = plan_now(&*node.state.lock().await, objects)
        .iter()
        .any(|s| matches!(s, PlanStep::Delete(_)));
    let fresh = match deletes {
        true => pods_api::list(&node.client, &key.namespace).await.ok(),
        false => None,
    };
    let objects = fresh.as_ref().unwrap_or(objects);
    let creates = {
        let mut state = node.state.lock().await;
        let steps = plan_now(&state, objects);
        let mut creates = 0;
        for step in steps {
            match step {
                PlanStep::Create => creates += 1,
                PlanStep::Delete(name) => {
                    tracing::info!(deployment = %key, pod = %name, "deleting pod");
                    let pod = (key.namespace.clone(), name);
                    remove_pod(node, &mut state, &pod, grace, Deletion::Ask);
                }
            }
        }
        creates
    };
    for _ in 0..creates {
        create_pod(node, d, key, &hash, grace).await?;
    }
    let state = node.state.lock().await;
    let pods: Vec<_> = state
        .pods
        .values()
        .filter(|p| p.namespace == key.namespace && p.deployment == key.name)
        .collect();
    let status = status_for(d, &hash, &pods, min_ready);
    drop(state);
    if let Some(status) = status {
        let api: Api<Deployment> = Api::namespaced(node.client.clone(), &key.namespace);
        let patch = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "status": status});
        api.patch_status(
            &key.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|e| anyhow::anyhow!("writing status: {e}"))?;
    }
    Ok(())
}

/// A new pod of `d`: its Pod object is created first, and its containers are then given that
/// object's uid (downward API `metadata.uid`), as on a real node.
async fn create_pod(
    node: &Arc<Node>,
    d: &Deployment,
    key: &DeploymentKey,
    hash: &str,
    grace: Duration,
) -> anyhow::Result<()> {
    let Some(ip) = node.state.lock().await.allocate_ip(&node.config.pod_subnet) else {
        anyhow::bail!("no free pod address in {}.0.0/16", node.config.pod_subnet);
    };
    let name = format!("{}-{}-{}", key.name, &hash[..10], random_suffix());
    let object = match pods_api::create(&node.client, d, &name, &hash[..10]).await {
        Ok(o) => o,
        Err(e) => {
            node.state.lock().await.release_ip(&node.config.pod_subnet, &ip);
            anyhow::bail!("creating pod {name}: {e}");
        }
    };
    let template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let pod_spec = template.spec.unwrap_or_default();
    let spec = PodSpec {
        namespace: key.namespace.clone(),
        name: name.clone(),
        uid: object.uid().unwrap_or_default(),
        deployment: key.name.clone(),
        template_hash: hash.to_string(),
        ip: ip.clone(),
        labels: object.labels().clone(),
        containers: pod_spec.containers,
        grace,
        runtime_class: pod_spec.runtime_class_name,
        security: pod_spec.security_context,
        volumes: pod_spec.volumes.unwrap_or_default(),
        service_account: pod_spec.service_account_name,
        automount_token: pod_spec.automount_service_account_token,
    };
    tracing::info!(deployment = %key, pod = %name, %ip, uid = %spec.uid, "creating pod");
    let kubelet = pod::Kubelet {
        client: node.client.clone(),
        cluster: node.config.cluster.clone(),
    };
    let mut state = node.state.lock().await;
    state.pod_uids.insert(spec.uid.clone());
    let mut pod = Pod::start(spec, &node.config.runtime, kubelet);
    pod.created_at = object
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| SystemTime::from(t.0));
    state.pods.insert((key.namespace.clone(), name), pod);
    Ok(())
}
