//! Membership: the worker's Lease, renewed every few seconds, and self-fencing.
//!
//! The Lease is named after the pod and labelled with pool and revision; its
//! `troupe.dev/address` annotation tells other workers (and the operator) where this worker's API
//! is. If the worker cannot renew it for `duration - margin`, it stops every actor before the
//! lease can expire, so that once the operator re-places them, no actor runs twice.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::MicroTime, jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::json;
use troupe_crds::labels;

use crate::host::Host;

/// The annotation holding `ip:port` of the worker's API.
pub const ADDRESS_ANNOTATION: &str = "troupe.dev/address";
/// The field manager of everything the worker writes.
pub const FIELD_MANAGER: &str = "troupe-worker";

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub pod: String,
    pub pool: String,
    pub revision: String,
    pub address: String,
    pub duration: Duration,
    pub renew_every: Duration,
    /// Fence this long before the lease would expire.
    pub margin: Duration,
}

/// Whether the worker must fence, given when it last renewed.
pub fn must_fence(last_renewed: Option<Instant>, now: Instant, cfg: &LeaseConfig) -> bool {
    match last_renewed {
        None => true,
        Some(t) => now.duration_since(t) + cfg.margin >= cfg.duration,
    }
}

fn lease_body(cfg: &LeaseConfig, acquired: &MicroTime) -> serde_json::Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": cfg.pod,
            "namespace": cfg.namespace,
            "labels": {labels::POOL: cfg.pool, labels::REVISION: cfg.revision, labels::MANAGED_BY: labels::MANAGER},
            "annotations": {ADDRESS_ANNOTATION: cfg.address},
        },
        "spec": {
            "holderIdentity": cfg.pod,
            "leaseDurationSeconds": cfg.duration.as_secs().max(1),
            "acquireTime": acquired,
            "renewTime": MicroTime(Timestamp::now()),
        }
    })
}

/// Renews the lease forever, fencing the host when renewals fail for too long.
pub async fn run(
    client: Client,
    host: Arc<Host>,
    cfg: LeaseConfig,
    acquired: tokio::sync::watch::Sender<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let acquired_at = MicroTime(Timestamp::now());
    let mut last_ok: Option<Instant> = None;
    let mut tick = tokio::time::interval(cfg.renew_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let body = lease_body(&cfg, &acquired_at);
        let result = tokio::time::timeout(
            cfg.renew_every,
            api.patch(
                &cfg.pod,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            ),
        )
        .await;
        match result {
            Ok(Ok(_)) => {
                host.metrics().lease_renewals.with_label_values(&["ok"]).inc();
                last_ok = Some(Instant::now());
                acquired.send_replace(true);
                if host.is_fenced() {
                    host.set_fenced(false).await;
                }
            }
            Ok(Err(e)) => {
                host.metrics().lease_renewals.with_label_values(&["error"]).inc();
                tracing::warn!(error = %e, "lease renewal failed");
            }
            Err(_) => {
                host.metrics()
                    .lease_renewals
                    .with_label_values(&["timeout"])
                    .inc();
                tracing::warn!("lease renewal timed out");
            }
        }
        if must_fence(last_ok, Instant::now(), &cfg) && !host.is_fenced() {
            host.set_fenced(true).await;
        }
    }
}

/// Deletes the lease so the operator can re-place this worker's actors at once.
pub async fn release(client: Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    match api.delete(&cfg.pod, &DeleteParams::default()).await {
        Ok(_) => tracing::info!("lease released"),
        Err(e) => tracing::warn!(error = %e, "releasing the lease failed; it will expire"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LeaseConfig {
        LeaseConfig {
            namespace: "ns".into(),
            pod: "w-1".into(),
            pool: "p".into(),
            revision: "r1".into(),
            address: "127.10.0.2:8080".into(),
            duration: Duration::from_secs(10),
            renew_every: Duration::from_secs(2),
            margin: Duration::from_secs(3),
        }
    }

    #[test]
    fn a_worker_fences_before_its_lease_can_expire() {
        let now = Instant::now();
        assert!(must_fence(None, now, &cfg()), "no lease yet: no actors");
        assert!(!must_fence(Some(now - Duration::from_secs(6)), now, &cfg()));
        assert!(
            must_fence(Some(now - Duration::from_secs(7)), now, &cfg()),
            "7 s + 3 s margin reaches the 10 s lease"
        );
    }

    #[test]
    fn the_lease_names_the_pod_pool_revision_and_address() {
        let body = lease_body(&cfg(), &MicroTime(Timestamp::now()));
        assert_eq!(body["metadata"]["name"], "w-1");
        assert_eq!(body["metadata"]["labels"]["troupe.dev/pool"], "p");
        assert_eq!(body["metadata"]["labels"]["troupe.dev/revision"], "r1");
        assert_eq!(
            body["metadata"]["annotations"]["troupe.dev/address"],
            "127.10.0.2:8080"
        );
        assert_eq!(body["spec"]["holderIdentity"], "w-1");
        assert_eq!(body["spec"]["leaseDurationSeconds"], 10);
    }
}
