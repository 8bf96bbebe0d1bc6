//! Installing the stand-in CRDs into a fresh control plane.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

use crate::standins::{RETIRED, StandIn, etcd_key, etcd_record, stand_ins};

/// The field manager of everything the local control plane writes.
pub const FIELD_MANAGER: &str = "troupe-localcp";

/// Installs every stand-in (idempotent) and waits until the server serves each of them.
pub async fn install_stand_ins(client: &Client, etcd_url: &str) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let http = reqwest::Client::new();
    for name in RETIRED {
        if crds.get_opt(name).await?.is_some() {
            crds.delete(name, &Default::default())
                .await
                .map_err(|e| anyhow::anyhow!("deleting the retired stand-in CRD {name}: {e}"))?;
            tracing::info!(%name, "retired stand-in deleted: the API is served for real");
        }
    }
    for StandIn { crd, via_api } in stand_ins() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        if via_api {
            crds.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .map_err(|e| anyhow::anyhow!("applying stand-in CRD {name}: {e}"))?;
        } else {
            // Written every time, so a changed stand-in takes effect on the next `up`.
            let created = crds
                .get_opt(&name)
                .await?
                .and_then(|c| c.metadata.creation_timestamp);
            let now = match created {
                Some(t) => t.0.to_string(),
                None => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            let uid = format!("troupe-standin-{}", name.replace('.', "-"));
            let record = etcd_record(&crd, &uid, &now);
            let body = serde_json::json!({
                "key": B64.encode(etcd_key(&crd)),
                "value": B64.encode(serde_json::to_vec(&record)?),
            });
            let resp = http
                .post(format!("{etcd_url}/v3/kv/put"))
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(
                resp.status().is_success(),
                "etcd refused {name}: {}",
                resp.status()
            );
        }
        wait_served(client, &crd).await?;
        tracing::info!(%name, "stand-in served");
    }
    Ok(())
}

async fn wait_served(client: &Client, crd: &CustomResourceDefinition) -> anyhow::Result<()> {
    let path = format!(
        "/apis/{}/{}/{}",
        crd.spec.group, crd.spec.versions[0].name, crd.spec.names.plural
    );
    for _ in 0..200 {
        let req = http::Request::get(&path).body(Vec::new())?;
        if client.request_text(req).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{path} is not served 20 s after installing its CRD")
}
