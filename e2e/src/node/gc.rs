//! Garbage collection of objects whose owners are gone (the server has no GC controller).
//!
//! Like the real collector, an object is deleted (in the background) when none of its
//! ownerReferences points at a live object with the same uid. Owners of a kind the server does
//! not serve are assumed alive: deleting on a guess would lose data. The kinds collected are the
//! CRDs' (stand-ins included) and the core API's kinds that carry owners, Pods among them (a
//! Pod's deletion is graceful: the node agent stops it, then removes it).

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, ListParams, PartialObjectMeta},
    core::GroupVersionKind,
};

/// A served resource: how to reach it, and whether it is namespaced.
#[derive(Clone)]
struct Served {
    resource: ApiResource,
    namespaced: bool,
}

/// Resources the server serves, by (apiVersion, kind).
async fn served(client: &Client) -> kube::Result<BTreeMap<(String, String), Served>> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let mut out = BTreeMap::new();
    for crd in crds.items {
        for v in crd.spec.versions.iter().filter(|v| v.served) {
            let gvk = GroupVersionKind::gvk(&crd.spec.group, &v.name, &crd.spec.names.kind);
            let resource = ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural);
            let key = (resource.api_version.clone(), resource.kind.clone());
            out.insert(
                key,
                Served {
                    resource,
                    namespaced: crd.spec.scope == "Namespaced",
                },
            );
        }
    }
    // The core API's kinds that carry ownerReferences (the operator's ServiceAccounts,
    // RoleBindings and Services, a chart's ConfigMaps and Secrets, the node agent's Pods) or
    // are owners (a worker's Lease is its Pod's: the Pod stays until its containers are gone).
    const RBAC: &str = "rbac.authorization.k8s.io";
    for (group, kind, plural, namespaced) in [
        ("", "Pod", "pods", true),
        ("", "ServiceAccount", "serviceaccounts", true),
        ("", "Secret", "secrets", true),
        ("", "ConfigMap", "configmaps", true),
        ("", "Service", "services", true),
        (RBAC, "Role", "roles", true),
        (RBAC, "RoleBinding", "rolebindings", true),
        (RBAC, "ClusterRole", "clusterroles", false),
        (RBAC, "ClusterRoleBinding", "clusterrolebindings", false),
        ("policy", "PodDisruptionBudget", "poddisruptionbudgets", true),
    ] {
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural);
        out.insert(
            (resource.api_version.clone(), kind.to_string()),
            Served { resource, namespaced },
        );
    }
    Ok(out)
}

/// Whether the owner exists with the uid the reference names; `None` when it cannot be told.
async fn owner_alive(
    client: &Client,
    served: &BTreeMap<(String, String), Served>,
    ns: Option<&str>,
    owner: &OwnerReference,
) -> Option<bool> {
    let s = served.get(&(owner.api_version.clone(), owner.kind.clone()))?;
    let api: Api<DynamicObject> = match (s.namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &s.resource),
        (true, None) => return Some(false), // a cluster-scoped object cannot have a namespaced owner
        (false, _) => Api::all_with(client.clone(), &s.resource),
    };
    match api.get_metadata_opt(&owner.name).await {
        Ok(Some(meta)) => Some(meta.metadata.uid.as_deref() == Some(owner.uid.as_str())),
        Ok(None) => Some(false),
        Err(_) => None,
    }
}

/// One pass: every object of every served kind whose owners are all gone is deleted.
pub async fn collect(client: &Client) -> kube::Result<usize> {
    let served = served(client).await?;
    let mut deleted = 0;
    let kinds: Vec<_> = served.values().cloned().collect();
    for s in kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &s.resource);
        let list = match api.list_metadata(&ListParams::default()).await {
            Ok(l) => l,
            Err(_) => continue,
        };
        for obj in list.items {
            let owners = obj.metadata.owner_references.clone().unwrap_or_default();
            if owners.is_empty() || obj.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let ns = obj.metadata.namespace.as_deref();
            let mut any_alive = false;
            for o in &owners {
                if owner_alive(client, &served, ns, o).await != Some(false) {
                    any_alive = true;
                    break;
                }
            }
            if !any_alive {
                delete(client, &s, &obj).await;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

async fn delete(client: &Client, s: &Served, obj: &PartialObjectMeta<DynamicObject>) {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let api: Api<DynamicObject> = match &obj.metadata.namespace {
        Some(ns) if s.namespaced => Api::namespaced_with(client.clone(), ns, &s.resource),
        _ => Api::all_with(client.clone(), &s.resource),
    };
    match api.delete(&name, &DeleteParams::background()).await {
        Ok(_) => {
            tracing::info!(kind = %s.resource.kind, namespace = ?obj.metadata.namespace, %name, "garbage-collected: every owner is gone")
        }
        Err(e) => {
            tracing::warn!(kind = %s.resource.kind, %name, error = %e, "garbage collection failed")
        }
    }
}

/// Runs the collector forever.
pub async fn run(node: std::sync::Arc<super::Node>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = collect(&node.client).await {
            tracing::warn!(error = %e, "garbage collection pass failed");
        }
    }
}
