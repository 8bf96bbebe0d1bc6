//! Live workers, from their Leases: a worker is live while its lease's renewTime plus its
//! duration is in the future. An expired or deleted lease means the worker is gone.

use k8s_openapi::{
    api::coordination::v1::Lease,
    jiff::{SignedDuration, Timestamp},
};
use troupe_crds::labels;

/// The lease annotation where a worker publishes its API address.
pub const ADDRESS_ANNOTATION: &str = "troupe.dev/address";

/// A worker with a live lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveWorker {
    pub name: String,
    pub revision: String,
    /// Where the worker's HTTP API listens (`host:port`, the lease's `troupe.dev/address`).
    pub address: Option<String>,
}

/// When the lease expires, if it is a worker lease at all.
pub fn expiry(lease: &Lease) -> Option<Timestamp> {
    let spec = lease.spec.as_ref()?;
    spec.holder_identity.as_ref()?;
    let renewed = spec.renew_time.as_ref()?.0;
    let secs = spec.lease_duration_seconds.unwrap_or(0).max(0) as i64;
    renewed.checked_add(SignedDuration::from_secs(secs)).ok()
}

/// The live workers of `pool` among `leases` (all of one namespace).
pub fn live_workers<'a>(
    leases: impl IntoIterator<Item = &'a Lease>,
    pool: &str,
    now: Timestamp,
) -> Vec<LiveWorker> {
    let mut out: Vec<LiveWorker> = leases
        .into_iter()
        .filter(|l| {
            l.metadata
                .labels
                .as_ref()
                .and_then(|m| m.get(labels::POOL))
                .map(String::as_str)
                == Some(pool)
        })
        .filter(|l| l.metadata.deletion_timestamp.is_none())
        .filter(|l| expiry(l).is_some_and(|e| e > now))
        .map(|l| LiveWorker {
            name: l.metadata.name.clone().unwrap_or_default(),
            revision: l
                .metadata
                .labels
                .as_ref()
                .and_then(|m| m.get(labels::REVISION))
                .cloned()
                .unwrap_or_default(),
            address: l
                .metadata
                .annotations
                .as_ref()
                .and_then(|m| m.get(ADDRESS_ANNOTATION))
                .cloned(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lease(name: &str, pool: &str, renewed: &str, secs: i32) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"troupe.dev/pool": pool, "troupe.dev/revision": "r1"}},
            "spec": {"holderIdentity": name, "renewTime": renewed, "leaseDurationSeconds": secs}
        }))
        .unwrap()
    }

    #[test]
    fn only_unexpired_leases_of_the_pool_are_live_workers() {
        let now: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        let leases = [
            lease("w-ok", "p", "2026-01-01T00:00:05.000000Z", 10),
            lease("w-expired", "p", "2026-01-01T00:00:00.000000Z", 10),
            lease("w-other-pool", "q", "2026-01-01T00:00:09.000000Z", 10),
        ];
        let live = live_workers(&leases, "p", now);
        assert_eq!(
            live,
            vec![LiveWorker {
                name: "w-ok".into(),
                revision: "r1".into(),
                address: None,
            }]
        );
    }
}
