//! What a pool's workers may do in the API: a ServiceAccount per pool and a RoleBinding, in the
//! pool's namespace, to the worker ClusterRole the chart installs (read Actors, write their
//! status, hold a Lease, publish Events). Both are owned by the pool, so they go with it.
//!
//! Written once per pool and operator process (server-side apply is idempotent), so a steady
//! state makes no writes.

use std::{collections::HashSet, sync::Mutex};

use k8s_openapi::api::{
    core::v1::ServiceAccount,
    rbac::v1::{RoleBinding, RoleRef, Subject},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams},
};
use troupe_crds::{ActorPool, labels};

use crate::context::MANAGER;

/// The name of a pool's worker ServiceAccount and RoleBinding (a DNS label of at most 63).
pub fn worker_account_name(pool: &str) -> String {
    let base: String = pool.chars().take(63 - "-worker".len()).collect();
    format!("{}-worker", base.trim_end_matches('-'))
}

fn meta(pool: &ActorPool) -> ObjectMeta {
    ObjectMeta {
        name: Some(worker_account_name(&pool.name_any())),
        namespace: pool.namespace(),
        labels: Some(
            [
                (labels::POOL.to_string(), pool.name_any()),
                (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
            ]
            .into(),
        ),
        owner_references: pool.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// The pool's worker ServiceAccount.
pub fn build_service_account(pool: &ActorPool) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(pool),
        ..Default::default()
    }
}

/// Binds `cluster_role` to the pool's worker ServiceAccount, in the pool's namespace only.
pub fn build_role_binding(pool: &ActorPool, cluster_role: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(pool),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: cluster_role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: worker_account_name(&pool.name_any()),
            namespace: pool.namespace(),
            ..Default::default()
        }]),
    }
}

/// Pools whose account and binding this process has written (by uid).
#[derive(Default)]
pub struct WorkerAccess {
    done: Mutex<HashSet<String>>,
}

impl WorkerAccess {
    /// Applies the pool's ServiceAccount and RoleBinding unless done already.
    /// `accounts_served`: whether the API server serves core/v1 ServiceAccounts (the local
    /// control plane, an apiextensions-apiserver, does not).
    pub async fn ensure(
        &self,
        client: &Client,
        pool: &ActorPool,
        cluster_role: &str,
        accounts_served: bool,
    ) -> Result<(), kube::Error> {
        let uid = pool.uid().unwrap_or_default();
        if self.done.lock().unwrap_or_else(|e| e.into_inner()).contains(&uid) {
            return Ok(());
        }
        let ns = pool.namespace().unwrap_or_default();
        let name = worker_account_name(&pool.name_any());
        let params = PatchParams::apply(MANAGER).force();
        if accounts_served {
            let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
            accounts
                .patch(&name, &params, &Patch::Apply(&build_service_account(pool)))
                .await?;
        }
        let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
        bindings
            .patch(
                &name,
                &params,
                &Patch::Apply(&build_role_binding(pool, cluster_role)),
            )
            .await?;
        self.done.lock().unwrap_or_else(|e| e.into_inner()).insert(uid);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pool(name: &str) -> ActorPool {
        serde_json::from_value(json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool",
            "metadata": {"name": name, "namespace": "team-a", "uid": "u1"},
            "spec": {"template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn workers_get_an_account_bound_to_the_worker_role_in_their_namespace_only() {
        let p = pool("payments");
        let sa = build_service_account(&p);
        let rb = build_role_binding(&p, "troupe-worker");
        assert_eq!(sa.metadata.name.as_deref(), Some("payments-worker"));
        assert_eq!(rb.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(
            (rb.role_ref.kind.as_str(), rb.role_ref.name.as_str()),
            ("ClusterRole", "troupe-worker")
        );
        let s = &rb.subjects.as_ref().unwrap()[0];
        assert_eq!(
            (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()),
            ("ServiceAccount", "payments-worker", Some("team-a"))
        );
        for owners in [&sa.metadata.owner_references, &rb.metadata.owner_references] {
            assert_eq!(
                owners.as_ref().unwrap()[0].uid,
                "u1",
                "owned by the pool, deleted with it"
            );
        }
    }

    #[test]
    fn long_pool_names_still_make_valid_account_names() {
        let n = worker_account_name(&"p".repeat(70));
        assert!(n.len() <= 63 && n.ends_with("-worker"));
    }
}
