//! Unit tests of the console's pure parts, on typed objects built here (the `crds` types, never
//! hand-written JSON for status).

mod access;
mod actions;
mod chart;
mod forms;
mod live;
mod mailbox;
mod pages;
mod query;
mod regions;
mod results;
mod views;

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::{
    api::{
        coordination::v1::{Lease, LeaseSpec},
        core::v1::ObjectReference,
        events::v1::Event,
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time},
    jiff::{SignedDuration, Timestamp},
};
use troupe_crds::{
    AbortKind, AbortReason, Actor, ActorCounts, ActorPhase, ActorPool, ActorPoolSpec, ActorPoolStatus,
    ActorSpec, ActorStatus, PoolPhase, RestartPolicySpec, labels,
};

pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

pub fn actor(ns: &str, name: &str, pool: &str, phase: ActorPhase, worker: &str, revision: &str) -> Actor {
    let mut a = Actor::new(
        name,
        ActorSpec {
            pool: pool.into(),
            behavior: "counter".into(),
            config: None,
            schedule: None,
            paused: false,
            trigger: None,
            restart_policy: RestartPolicySpec::default(),
            circuit_breaker: None,
            journal: None,
        },
    );
    a.metadata.namespace = Some(ns.into());
    a.status = Some(ActorStatus {
        phase: Some(phase),
        worker: (!worker.is_empty()).then(|| worker.into()),
        revision: (!revision.is_empty()).then(|| revision.into()),
        ..Default::default()
    });
    a
}

pub fn pool(ns: &str, name: &str, status: ActorPoolStatus) -> ActorPool {
    let spec: ActorPoolSpec = serde_yaml_spec();
    let mut p = ActorPool::new(name, spec);
    p.metadata.namespace = Some(ns.into());
    p.status = Some(status);
    p
}

/// The smallest valid spec (its template is a k8s-openapi type: built through serde, once).
fn serde_yaml_spec() -> ActorPoolSpec {
    serde_json::from_value(serde_json::json!({
        "template": {"spec": {"containers": [{"name": "worker", "image": "troupe/worker:0.1.0"}]}}
    }))
    .unwrap()
}

pub fn counts(pairs: &[(&str, i32)]) -> ActorCounts {
    ActorCounts {
        total: pairs.iter().map(|(_, n)| n).sum(),
        by_phase: pairs
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect::<BTreeMap<_, _>>(),
    }
}

pub fn abort(revision: &str, secs: i64, message: &str) -> AbortReason {
    AbortReason {
        kind: AbortKind::Analysis,
        revision: revision.into(),
        metric: Some("error-rate".into()),
        value: Some(1.0),
        threshold: Some("<= 0.05".into()),
        alert: None,
        message: message.into(),
        time: Time(at(secs)),
        detected_at: None,
        completed_at: None,
    }
}

pub fn healthy(stable: &str) -> ActorPoolStatus {
    ActorPoolStatus {
        phase: Some(PoolPhase::Healthy),
        stable_revision: Some(stable.into()),
        ready_workers: 2,
        desired_workers: 2,
        actors: counts(&[("Running", 3), ("Failed", 1)]),
        ..Default::default()
    }
}

pub fn lease(ns: &str, name: &str, pool: &str, revision: &str, renewed: Timestamp, duration: i32) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: Some(
                [
                    (labels::POOL.to_string(), pool.to_string()),
                    (labels::REVISION.to_string(), revision.to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.into()),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(renewed)),
            ..Default::default()
        }),
    }
}

pub fn event(ns: &str, kind: &str, name: &str, reason: &str, when: Timestamp) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{reason}")),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        event_time: Some(MicroTime(when)),
        regarding: Some(ObjectReference {
            kind: Some(kind.into()),
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        }),
        reason: Some(reason.into()),
        note: Some(format!("{reason} happened")),
        type_: Some("Normal".into()),
        reporting_controller: Some("troupe.dev/operator".into()),
        ..Default::default()
    }
}

pub fn arcs<T>(items: impl IntoIterator<Item = T>) -> Vec<Arc<T>> {
    items.into_iter().map(Arc::new).collect()
}

pub fn secs(s: i64) -> SignedDuration {
    SignedDuration::from_secs(s)
}

/// The frame a page is rendered in: all namespaces, batch 7, at `at(100)`.
pub fn frame() -> crate::pages::Frame<'static> {
    crate::pages::Frame {
        namespace: None,
        seq: 7,
        problems: vec![],
        now: at(100),
        served: crate::pages::Served::Local,
        instance: "i1",
    }
}

/// The page of pool `a/p` with `status`, alone: no actors, workers or Events, at `at(100)`.
pub fn pool_page_alone(status: ActorPoolStatus) -> crate::pages::Page {
    let pools = arcs([pool("a", "p", status)]);
    let src = crate::pages::pool::Sources {
        pool: Some(pools[0].clone()),
        actors: &[],
        leases: &[],
        events: &[],
        mailboxes: &BTreeMap::new(),
    };
    crate::pages::pool::page("a", "p", src, at(100))
}
