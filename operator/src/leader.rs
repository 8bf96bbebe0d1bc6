//! Leader election on a Lease, so that two replicas can run and only one writes.
//!
//! A replica takes the Lease when it is free or expired and renews it every `renew`; another
//! replica waits. A leader that cannot renew in time stops the process (like controller-runtime),
//! and its replacement becomes a follower: no two replicas ever reconcile at once.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};

#[derive(Clone, Debug)]
pub struct Election {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub renew: Duration,
}

/// Whether `identity` may take or keep a lease held as in `spec` at `now`.
pub fn may_hold(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(holder) if holder == identity => true,
        Some(_) => {
            let renewed = spec
                .renew_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(Timestamp::UNIX_EPOCH);
            let secs = spec.lease_duration_seconds.unwrap_or(0).max(0) as i64;
            renewed
                .checked_add(SignedDuration::from_secs(secs))
                .is_ok_and(|expiry| expiry <= now)
        }
    }
}

impl Election {
    fn spec(&self, acquired: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            ..Default::default()
        }
    }

    /// One attempt to take or renew the lease; true when this replica holds it afterwards.
    /// Writes carry the read resourceVersion, so two replicas cannot both win.
    pub async fn try_hold(&self, client: &Client) -> kube::Result<bool> {
        let api: Api<Lease> = Api::namespaced(client.clone(), &self.namespace);
        match api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(None)),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                if !may_hold(lease.spec.as_ref(), &self.identity, Timestamp::now()) {
                    return Ok(false);
                }
                let keep = lease
                    .spec
                    .as_ref()
                    .filter(|s| s.holder_identity.as_deref() == Some(self.identity.as_str()))
                    .and_then(|s| s.acquire_time.clone());
                lease.spec = Some(self.spec(keep));
                match api.replace(&self.name, &PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Waits until this replica leads.
    pub async fn acquire(&self, client: &Client) {
        let mut logged = false;
        loop {
            match self.try_hold(client).await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "leading");
                    return;
                }
                Ok(false) if !logged => {
                    tracing::info!(lease = %self.name, "another replica leads; waiting for leadership");
                    logged = true;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election failed; retrying"),
            }
            tokio::time::sleep(self.renew).await;
        }
    }

    /// Renews forever; returns when leadership is lost (renewals failed for longer than the
    /// lease minus one renew period, or another replica took it).
    pub async fn hold(&self, client: &Client) {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.renew).await;
            match self.try_hold(client).await {
                Ok(true) => last = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "renewing leadership failed"),
            }
            if last.elapsed() + self.renew >= self.duration {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(who: &str, renewed: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(who.into()),
            renew_time: Some(MicroTime(renewed.parse().unwrap())),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }
    }

    #[test]
    fn a_replica_takes_a_free_or_expired_lease_and_keeps_its_own() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        assert!(may_hold(None, "a", now));
        assert!(may_hold(Some(&held_by("a", "2026-01-01T00:00:59Z")), "a", now));
        assert!(
            !may_hold(Some(&held_by("b", "2026-01-01T00:00:59Z")), "a", now),
            "b's lease is live"
        );
        assert!(
            may_hold(Some(&held_by("b", "2026-01-01T00:00:40Z")), "a", now),
            "b's lease expired"
        );
    }
}
