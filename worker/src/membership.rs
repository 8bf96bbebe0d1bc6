//! Membership: the worker's Lease, renewed every few seconds, and self-fencing.
//!
//! The Lease is named after the pod and labelled with pool and revision; its
//! `troupe.dev/address` annotation tells other workers (and the operator) where this worker's API
//! is. Every success extends the worker's proof of a live lease ([`crate::lease_clock`]); when the
//! proof runs out (renewals failing, or the process paused) nothing runs and the host fences, so
//! that once the operator re-places the actors, no actor runs twice.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::MicroTime, jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde_json::json;
use troupe_crds::labels;

use crate::{host::Host, lease_clock::BootInstant};

/// The annotation holding `ip:port` of the worker's API.
pub const ADDRESS_ANNOTATION: &str = "troupe.dev/address";
/// The field manager of everything the worker writes.
pub const FIELD_MANAGER: &str = "troupe-worker";

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub pod: String,
    /// The pod's uid, when known: the Lease's owner, so that it goes with the pod.
    pub pod_uid: Option<String>,
    pub pool: String,
    pub revision: String,
    pub address: String,
    pub duration: Duration,
    pub renew_every: Duration,
    /// Stop running actors this long before the lease could expire: time to stop them (see
    /// [`crate::lease_clock`]).
    pub margin: Duration,
}

/// The Lease this worker holds; `leaving`: since when it is leaving (see [`labels::LEAVING`]).
fn lease_body(cfg: &LeaseConfig, acquired: &MicroTime, leaving: Option<&str>) -> serde_json::Value {
    let mut body = json!({
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
    });
    if let Some(since) = leaving {
        body["metadata"]["annotations"][labels::LEAVING] = json!(since);
    }
    if let Some(uid) = &cfg.pod_uid {
        body["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "v1", "kind": "Pod", "name": cfg.pod, "uid": uid}]);
    }
    body
}

/// Renews the lease forever. Each success extends the worker's proof ([`LeaseClock`]) from the
/// moment its request was sent; when the proof runs out the host is fenced; after a fence, the
/// first success asks for a fresh list of assignments (`relist`), which lifts the fence. Once
/// `leaving` says since when the worker leaves, the Lease says so, from a renewal sent at once.
pub async fn run(
    client: Client,
    host: Arc<Host>,
    cfg: LeaseConfig,
    acquired: tokio::sync::watch::Sender<bool>,
    relist: tokio::sync::watch::Sender<u64>,
    mut leaving: tokio::sync::watch::Receiver<Option<String>>,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let clock = host.config().lease.clone();
    let acquired_at = MicroTime(Timestamp::now());
    let mut tick = tokio::time::interval(cfg.renew_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut told = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = leaving.changed(), if told => told = changed.is_ok(),
        }
        // A thawed process gets here with its proof long gone: fence before anything else.
        if !clock.is_live() {
            host.fence("the lease proof ran out").await;
        }
        let since = leaving.borrow().clone();
        let body = lease_body(&cfg, &acquired_at, since.as_deref());
        let sent = BootInstant::now();
        // The proof counts from when the request was *sent*, and the operator can only have seen
        // the renewal after that: however late the answer comes, the proof ends before the
        // operator could give up on this worker (docs/architecture.md). So a slow API server
        // only shortens the proof, and the request may take up to the margin before it is
        // abandoned and tried again — a shorter timeout turns a loaded API server into fences.
        let result = tokio::time::timeout(
            cfg.margin.max(cfg.renew_every),
            api.patch(
                &cfg.pod,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            ),
        )
        .await;
        match result {
            Ok(Ok(_)) => {
                let answered_in = BootInstant::now().duration_since(sent);
                let outcome = if answered_in > cfg.renew_every {
                    "slow"
                } else {
                    "ok"
                };
                host.metrics().lease_renewals.with_label_values(&[outcome]).inc();
                clock.renewed(sent, cfg.duration, cfg.margin);
                acquired.send_replace(true);
                if host.is_fenced() && clock.is_live() {
                    // Once per fence: asking again at every renewal would restart a list still
                    // in progress each second, and a slow API server would never finish one.
                    let generation = host.fence_generation();
                    relist.send_if_modified(|asked| std::mem::replace(asked, generation) != generation);
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
        if !clock.is_live() {
            host.fence("the lease could not be renewed in time").await;
        }
    }
}

/// Stops every actor when the proof runs out between two renewals (a renewal that hangs up to
/// its timeout must not leave actors running past the proof), checking as often as renewals run.
pub async fn watchdog(host: Arc<Host>, every: Duration) {
    let clock = host.config().lease.clone();
    loop {
        tokio::time::sleep(clock.remaining().clamp(Duration::from_millis(10), every)).await;
        if !clock.is_live() && !host.is_fenced() {
            host.fence("the lease proof ran out").await;
        }
    }
}

/// How many other workers of this worker's pool could take its actors: their Lease is held,
/// renewed lately and not leaving. Asked by a leaving worker, so that the last worker of a pool
/// (scaled to zero, deleted, or run alone) stops at once instead of waiting for a move that
/// nobody will make. `Err` when the Leases cannot be listed: the caller keeps waiting.
pub async fn takers(client: Client, cfg: &LeaseConfig) -> Result<usize, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let selector = format!("{}={}", labels::POOL, cfg.pool);
    let leases = api.list(&ListParams::default().labels(&selector)).await?;
    Ok(count_takers(&leases.items, &cfg.pod, Timestamp::now()))
}

/// The Leases of `leases` whose worker could take actors at `now`: another holder, not
/// leaving, renewed within two lease durations. Judged on this worker's wall clock against the
/// peer's: a skewed clock only changes how long a leave waits, never who runs an actor (the
/// operator judges liveness, and fencing keeps a single activation either way).
fn count_takers(leases: &[Lease], me: &str, now: Timestamp) -> usize {
    leases
        .iter()
        .filter(|lease| lease.name_any() != me)
        .filter(|lease| !lease.annotations().contains_key(labels::LEAVING))
        .filter(|lease| {
            let Some(spec) = &lease.spec else {
                return false;
            };
            let held = spec.holder_identity.as_deref().is_some_and(|h| !h.is_empty());
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(1));
            let fresh = spec
                .renew_time
                .as_ref()
                .is_some_and(|renewed| renewed.0.as_second() + 2 * duration >= now.as_second());
            held && fresh
        })
        .count()
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
            pod_uid: None,
            pool: "p".into(),
            revision: "r1".into(),
            address: "127.10.0.2:8080".into(),
            duration: Duration::from_secs(10),
            renew_every: Duration::from_secs(2),
            margin: Duration::from_secs(3),
        }
    }

    #[test]
    fn the_lease_names_the_pod_pool_revision_and_address() {
        let body = lease_body(&cfg(), &MicroTime(Timestamp::now()), None);
        assert_eq!(body["metadata"]["name"], "w-1");
        assert_eq!(body["metadata"]["labels"]["troupe.dev/pool"], "p");
        assert_eq!(body["metadata"]["labels"]["troupe.dev/revision"], "r1");
        assert_eq!(
            body["metadata"]["annotations"]["troupe.dev/address"],
            "127.10.0.2:8080"
        );
        assert_eq!(body["spec"]["holderIdentity"], "w-1");
        assert_eq!(body["spec"]["leaseDurationSeconds"], 10);
        assert!(body["metadata"]["ownerReferences"].is_null());
        assert!(body["metadata"]["annotations"][labels::LEAVING].is_null());
    }

    #[test]
    fn a_leaving_worker_says_since_when_on_its_lease() {
        let body = lease_body(&cfg(), &MicroTime(Timestamp::now()), Some("2026-11-23T10:00:00Z"));
        assert_eq!(
            body["metadata"]["annotations"][labels::LEAVING],
            "2026-11-23T10:00:00Z"
        );
        assert_eq!(body["spec"]["holderIdentity"], "w-1", "it still holds the lease");
    }

    fn peer(name: &str, renewed_secs_ago: i64, leaving: bool) -> Lease {
        let now = Timestamp::now().as_second();
        let mut body = lease_body(
            &LeaseConfig {
                pod: name.into(),
                ..cfg()
            },
            &MicroTime(Timestamp::now()),
            leaving.then_some("2026-11-23T10:00:00Z"),
        );
        body["spec"]["renewTime"] = json!(MicroTime(Timestamp::from_second(now - renewed_secs_ago).unwrap()));
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn only_other_live_workers_that_are_not_leaving_could_take_a_leaving_workers_actors() {
        let now = Timestamp::now();
        let me = peer("w-1", 0, true);
        assert_eq!(
            count_takers(std::slice::from_ref(&me), "w-1", now),
            0,
            "a worker alone"
        );
        let leaving = peer("w-2", 0, true);
        let expired = peer("w-3", 25, false);
        assert_eq!(
            count_takers(&[me.clone(), leaving, expired], "w-1", now),
            0,
            "the others leave too (scaled to zero, pool deleted) or lapsed two leases ago"
        );
        let live = peer("w-4", 3, false);
        let late = peer("w-5", 15, false);
        assert_eq!(
            count_takers(&[me, live, late], "w-1", now),
            2,
            "a renewal up to two leases old counts: clocks differ"
        );
    }

    #[test]
    fn the_lease_is_owned_by_its_pod_so_it_goes_with_the_pod() {
        let cfg = LeaseConfig {
            pod_uid: Some("u-1".into()),
            ..cfg()
        };
        let body = lease_body(&cfg, &MicroTime(Timestamp::now()), None);
        let owner = &body["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["name"], &owner["uid"]),
            (&json!("Pod"), &json!("w-1"), &json!("u-1"))
        );
    }
}
