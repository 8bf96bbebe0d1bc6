//! The optional headless Service of a pool (`spec.headlessService`): `<pool>-workers`, selecting
//! every worker of the pool across revisions, port `http`. Stable DNS for the workers' APIs and
//! a target for Prometheus' endpoint discovery. Owned by the pool; deleted when the field is
//! turned off. Written once per pool, setting and operator process.

use std::{collections::HashSet, sync::Mutex};

use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams},
};
use troupe_crds::{ActorPool, labels};

use crate::{context::MANAGER, deployment::WORKER_PORT};

/// The Service's name (a DNS label of at most 63).
pub fn service_name(pool: &str) -> String {
    let base: String = pool.chars().take(63 - "-workers".len()).collect();
    format!("{}-workers", base.trim_end_matches('-'))
}

/// The pool's headless Service.
pub fn build_headless_service(pool: &ActorPool) -> Service {
    let name = pool.name_any();
    Service {
        metadata: ObjectMeta {
            name: Some(service_name(&name)),
            namespace: pool.namespace(),
            labels: Some(
                [
                    (labels::POOL.to_string(), name.clone()),
                    (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
                ]
                .into(),
            ),
            owner_references: pool.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some([(labels::POOL.to_string(), name)].into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: WORKER_PORT,
                target_port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// Which (pool uid, wanted) this process has made true.
#[derive(Default)]
pub struct HeadlessServices {
    done: Mutex<HashSet<(String, bool)>>,
}

impl HeadlessServices {
    pub async fn ensure(&self, client: &Client, pool: &ActorPool) -> Result<(), kube::Error> {
        let key = (pool.uid().unwrap_or_default(), pool.spec.headless_service);
        if self.done.lock().unwrap_or_else(|e| e.into_inner()).contains(&key) {
            return Ok(());
        }
        let api: Api<Service> = Api::namespaced(client.clone(), &pool.namespace().unwrap_or_default());
        let name = service_name(&pool.name_any());
        if pool.spec.headless_service {
            api.patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&build_headless_service(pool)),
            )
            .await?;
        } else {
            match api.get_opt(&name).await? {
                Some(s)
                    if s.owner_references()
                        .iter()
                        .any(|o| Some(&o.uid) == pool.uid().as_ref()) =>
                {
                    api.delete(&name, &DeleteParams::default()).await?;
                }
                _ => {}
            }
        }
        self.done.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_headless_service_selects_every_worker_of_the_pool_and_is_owned_by_it() {
        let pool: ActorPool = serde_json::from_value(json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool",
            "metadata": {"name": "payments", "namespace": "team-a", "uid": "u1"},
            "spec": {"headlessService": true, "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}}
        }))
        .unwrap();
        let s = build_headless_service(&pool);
        let spec = s.spec.unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("payments-workers"));
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(
            spec.selector.unwrap(),
            [(labels::POOL.to_string(), "payments".to_string())].into(),
            "all revisions, so canary and stable workers both answer"
        );
        assert_eq!(spec.ports.unwrap()[0].port, WORKER_PORT);
        assert_eq!(s.metadata.owner_references.unwrap()[0].uid, "u1");
    }
}
