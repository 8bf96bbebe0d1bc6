//! Leader election on a Lease, so that two replicas can run and only one writes.
//!
//! The same rules as the workers' membership, from the other side:
//! - The leader proves its leadership on its own clock ([`LeaseClock`]): a renewal that was sent
//!   at `t` and answered within its deadline proves leadership until `t + duration − margin`.
//!   Every reconcile asks for the proof before it writes; a leader that was paused or cut off
//!   stops writing before any follower may take over, and then the process exits (it comes
//!   back as a follower, like controller-runtime's).
//! - A follower takes the lease only when it has not seen the lease's `renewTime` change for the
//!   duration plus a grace on its own clock: the leader's wall clock is never compared with it.
//! - Every call has a deadline; writes carry the read resourceVersion, so two replicas cannot
//!   both win; SIGTERM releases the lease so the follower takes over at once.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use troupe_crds::lease_clock::{BootInstant, LeaseClock};

use crate::membership::GRACE;

#[derive(Clone, Debug)]
pub struct Election {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub renew: Duration,
    /// This replica's proof of leadership; reconciles ask it before writing.
    pub proof: Arc<LeaseClock>,
    /// When this replica last saw the lease's holder or renewTime change.
    seen: Arc<Mutex<Option<LastSeen>>>,
}

/// The lease's holder and renewTime as last seen, and when they last changed.
type LastSeen = (Option<String>, Option<String>, Instant);

/// Whether `identity` may take or keep a lease held as in `spec`, given that it has seen the
/// lease unchanged for `unchanged_for`.
pub fn may_hold(spec: Option<&LeaseSpec>, identity: &str, unchanged_for: Duration) -> bool {
    let Some(spec) = spec else { return true };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(holder) if holder == identity => true,
        Some(_) => {
            let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
            unchanged_for >= duration + GRACE
        }
    }
}

impl Election {
    pub fn new(
        namespace: String,
        name: String,
        identity: String,
        (duration, renew): (Duration, Duration),
        proof: Arc<LeaseClock>,
    ) -> Self {
        Self {
            namespace,
            name,
            identity,
            duration,
            renew,
            proof,
            seen: Arc::default(),
        }
    }

    /// Stop writing this long before the lease could be taken: two renew periods.
    fn margin(&self) -> Duration {
        self.renew * 2
    }

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

    /// How long this replica has seen the lease unchanged (holder and renewTime).
    fn unchanged_for(&self, spec: Option<&LeaseSpec>) -> Duration {
        let holder = spec.and_then(|s| s.holder_identity.clone());
        let renewed = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0.to_string());
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match seen.as_ref() {
            Some((h, r, at)) if *h == holder && *r == renewed => now.saturating_duration_since(*at),
            _ => {
                *seen = Some((holder, renewed, now));
                Duration::ZERO
            }
        }
    }

    /// One attempt to take or renew the lease, within one renew period; true when this replica
    /// holds it afterwards (and its proof was extended).
    pub async fn try_hold(&self, client: &Client) -> kube::Result<bool> {
        let sent = BootInstant::now();
        let held = match tokio::time::timeout(self.renew, self.try_hold_once(client)).await {
            Ok(r) => r?,
            Err(_) => {
                tracing::warn!("leader election call timed out");
                return Ok(false);
            }
        };
        if held {
            self.proof.renewed(sent, self.duration, self.margin());
        }
        Ok(held)
    }

    async fn try_hold_once(&self, client: &Client) -> kube::Result<bool> {
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
                let unchanged_for = self.unchanged_for(lease.spec.as_ref());
                if !may_hold(lease.spec.as_ref(), &self.identity, unchanged_for) {
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

    /// Renews forever; returns when leadership is lost: another replica took the lease, or the
    /// proof ran out (renewals failing or answered late, or this process was paused).
    pub async fn hold(&self, client: &Client) {
        loop {
            tokio::time::sleep(self.renew).await;
            match self.try_hold(client).await {
                Ok(true) => {}
                Ok(false) if self.proof.is_live() => {}
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "renewing leadership failed"),
            }
            if !self.proof.is_live() {
                return;
            }
        }
    }

    /// Gives the lease up (on SIGTERM), so that a follower takes over without waiting for it to
    /// expire. Best effort: the lease expires anyway.
    pub async fn release(&self, client: &Client) {
        self.proof.revoke();
        let api: Api<Lease> = Api::namespaced(client.clone(), &self.namespace);
        let release = async {
            let Some(mut lease) = api.get_opt(&self.name).await? else {
                return Ok(());
            };
            let mine = lease
                .spec
                .as_ref()
                .is_some_and(|s| s.holder_identity.as_deref() == Some(self.identity.as_str()));
            if mine {
                lease.spec = Some(LeaseSpec {
                    lease_duration_seconds: Some(1),
                    ..Default::default()
                });
                api.replace(&self.name, &PostParams::default(), &lease).await?;
            }
            Ok::<_, kube::Error>(())
        };
        match tokio::time::timeout(self.renew, release).await {
            Ok(Ok(())) => tracing::info!(lease = %self.name, "leadership released"),
            Ok(Err(e)) => tracing::warn!(error = %e, "releasing leadership failed; it will expire"),
            Err(_) => tracing::warn!("releasing leadership timed out; it will expire"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(who: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(who.into()),
            renew_time: Some(MicroTime("2026-01-01T00:00:59Z".parse().unwrap())),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }
    }

    #[test]
    fn a_replica_takes_a_free_lease_or_one_it_has_seen_unchanged_for_the_duration_plus_grace() {
        assert!(may_hold(None, "a", Duration::ZERO));
        assert!(may_hold(Some(&held_by("a")), "a", Duration::ZERO), "its own");
        assert!(
            !may_hold(Some(&held_by("b")), "a", Duration::from_secs(15)),
            "b's is live"
        );
        assert!(
            may_hold(Some(&held_by("b")), "a", Duration::from_secs(16)),
            "b stopped renewing"
        );
        let released = LeaseSpec::default();
        assert!(may_hold(Some(&released), "a", Duration::ZERO), "b released it");
    }

    #[test]
    fn a_follower_counts_from_when_it_saw_the_lease_change_not_from_the_leaders_clock() {
        let timing = (Duration::from_secs(15), Duration::from_secs(2));
        let e = Election::new(
            "ns".into(),
            "l".into(),
            "a".into(),
            timing,
            Arc::new(LeaseClock::new()),
        );
        let spec = held_by("b");
        assert_eq!(e.unchanged_for(Some(&spec)), Duration::ZERO, "first seen");
        std::thread::sleep(Duration::from_millis(20));
        assert!(e.unchanged_for(Some(&spec)) >= Duration::from_millis(20));
        let mut renewed = spec.clone();
        renewed.renew_time = Some(MicroTime("2020-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(
            e.unchanged_for(Some(&renewed)),
            Duration::ZERO,
            "any change is a renewal"
        );
    }
}
