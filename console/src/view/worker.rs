//! A pool's workers, from their Leases (one per worker pod, named after it, labelled with pool
//! and revision), from the actors placed on them, and from what their metrics said of their
//! mailboxes (`mailbox.rs`), where the console could read them.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::{api::coordination::v1::Lease, jiff::Timestamp};
use kube::ResourceExt;
use troupe_crds::{Actor, labels};

use crate::mailbox::{EXPIRED, Mailbox, NOT_READ_YET};

/// One worker of a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerView {
    pub name: String,
    pub revision: String,
    /// Since the lease was last renewed; `None` when it never was.
    pub renewed_ago: Option<String>,
    /// Renewed within its duration, as far as this console's clock can tell. (The operator
    /// judges expiry on its own clock; this is a view, not a decision.)
    pub live: bool,
    pub actors_placed: usize,
    /// Messages waiting in its actors' mailboxes, or why that is not known.
    pub mailbox: Mailbox,
}

/// The workers of pool `ns/pool`, by revision then name; `mailboxes`: the readings of the
/// namespace's workers, by Lease name.
pub fn workers(
    leases: &[Arc<Lease>],
    actors: &[Arc<Actor>],
    mailboxes: &BTreeMap<String, Mailbox>,
    ns: &str,
    pool: &str,
    now: Timestamp,
) -> Vec<WorkerView> {
    let mut placed: BTreeMap<&str, usize> = BTreeMap::new();
    for a in actors
        .iter()
        .filter(|a| a.spec.pool == pool && a.namespace().as_deref() == Some(ns))
    {
        if let Some(w) = a.status.as_ref().and_then(|s| s.worker.as_deref()) {
            *placed.entry(w).or_default() += 1;
        }
    }
    let mut out: Vec<WorkerView> = leases
        .iter()
        .filter(|l| {
            l.namespace().as_deref() == Some(ns)
                && l.labels().get(labels::POOL).map(String::as_str) == Some(pool)
        })
        .map(|l| {
            let name = l.name_any();
            let spec = l.spec.clone().unwrap_or_default();
            let renewed = spec
                .renew_time
                .as_ref()
                .or(spec.acquire_time.as_ref())
                .map(|t| t.0);
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
            let live = renewed.is_some_and(|r| now.duration_since(r).as_secs() <= duration);
            // Only live workers are read; a reading of one since expired is not shown.
            let mailbox = match mailboxes.get(&name) {
                _ if !live => Mailbox::Unknown(EXPIRED.into()),
                Some(m) => m.clone(),
                None => Mailbox::Unknown(NOT_READ_YET.into()),
            };
            WorkerView {
                revision: l.labels().get(labels::REVISION).cloned().unwrap_or_default(),
                renewed_ago: renewed.map(|r| super::time::age(now, r)),
                live,
                actors_placed: placed.get(name.as_str()).copied().unwrap_or(0),
                mailbox,
                name,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.revision, &a.name).cmp(&(&b.revision, &b.name)));
    out
}
