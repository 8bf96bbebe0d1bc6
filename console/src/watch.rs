//! The shared watches: one reflector per kind (ActorPool, Actor, worker Lease, Event) for the
//! whole server, in the namespace given or in all, with the user's own credentials. Pages read
//! the reflectors' stores (memory, no API call per request); every change is also reported to
//! the live-update hub. A kind the user may not list (their RBAC) or that failed is shown on
//! every page with the API server's words, while the rest works.

use std::{
    collections::BTreeMap,
    fmt::Debug,
    sync::{Arc, RwLock},
};

use futures::StreamExt;
use k8s_openapi::api::{coordination::v1::Lease, events::v1::Event};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher::{self, Event as WatchEvent},
    },
};
use serde::de::DeserializeOwned;
use troupe_crds::{Actor, ActorPool, labels};

use crate::live::{Change, Hub};

/// How a watch is doing, for the banner of every page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchHealth {
    /// The first full list has arrived.
    pub ready: bool,
    /// The last error, until the watch recovers.
    pub error: Option<String>,
}

/// The stores of the four watches, and their health by kind.
#[derive(Clone)]
pub struct Stores {
    pub pools: Store<ActorPool>,
    pub actors: Store<Actor>,
    pub leases: Store<Lease>,
    pub events: Store<Event>,
    health: Arc<RwLock<BTreeMap<&'static str, WatchHealth>>>,
}

impl Stores {
    /// Kinds not ready or failing, with why.
    pub fn problems(&self) -> Vec<(&'static str, WatchHealth)> {
        let health = self.health.read().unwrap_or_else(|e| e.into_inner());
        health
            .iter()
            .filter(|(_, h)| !h.ready || h.error.is_some())
            .map(|(k, h)| (*k, h.clone()))
            .collect()
    }
}

impl Stores {
    /// Empty stores that no watch fills, for tests of the handlers.
    #[cfg(test)]
    pub(crate) fn detached() -> Stores {
        Stores {
            pools: reflector::store().0,
            actors: reflector::store().0,
            leases: reflector::store().0,
            events: reflector::store().0,
            health: Arc::default(),
        }
    }

    /// Stores holding `actors` and `leases`, and the writer of the actors' one (a watch's
    /// stand-in), for tests of the handlers.
    #[cfg(test)]
    pub(crate) fn with(actors: Vec<Actor>, leases: Vec<Lease>) -> (Stores, reflector::store::Writer<Actor>) {
        let (store, mut writer) = reflector::store();
        for a in actors {
            writer.apply_watcher_event(&WatchEvent::Apply(a));
        }
        let (lease_store, mut lease_writer) = reflector::store();
        for l in leases {
            lease_writer.apply_watcher_event(&WatchEvent::Apply(l));
        }
        let mut stores = Stores::detached();
        stores.actors = store;
        stores.leases = lease_store;
        (stores, writer)
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Starts the four watches; they run until the process ends.
pub fn start(client: &Client, namespace: Option<&str>, hub: &Hub) -> Stores {
    let health = Arc::new(RwLock::new(BTreeMap::new()));
    let pools = spawn(
        "ActorPool",
        api::<ActorPool>(client, namespace),
        watcher::Config::default(),
        hub,
        &health,
        |p: &ActorPool| Change::Pool {
            namespace: p.namespace().unwrap_or_default(),
            name: p.name_any(),
        },
    );
    let actors = spawn(
        "Actor",
        api::<Actor>(client, namespace),
        watcher::Config::default(),
        hub,
        &health,
        |a: &Actor| Change::Actor {
            namespace: a.namespace().unwrap_or_default(),
            name: a.name_any(),
            pool: a.spec.pool.clone(),
        },
    );
    // Only workers' Leases (labelled with their pool), not leader election's or others'.
    let leases = spawn(
        "Lease",
        api::<Lease>(client, namespace),
        watcher::Config::default().labels(labels::POOL),
        hub,
        &health,
        |l: &Lease| Change::Lease {
            namespace: l.namespace().unwrap_or_default(),
            pool: l.labels().get(labels::POOL).cloned().unwrap_or_default(),
        },
    );
    let events = spawn(
        "Event",
        api::<Event>(client, namespace),
        watcher::Config::default(),
        hub,
        &health,
        |e: &Event| {
            let r = e.regarding.clone().unwrap_or_default();
            Change::Event {
                namespace: e.namespace().unwrap_or_default(),
                kind: r.kind.unwrap_or_default(),
                name: r.name.unwrap_or_default(),
            }
        },
    );
    Stores {
        pools,
        actors,
        leases,
        events,
        health,
    }
}

fn spawn<K>(
    kind: &'static str,
    api: Api<K>,
    config: watcher::Config,
    hub: &Hub,
    health: &Arc<RwLock<BTreeMap<&'static str, WatchHealth>>>,
    change: fn(&K) -> Change,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let hub = hub.clone();
    let health = health.clone();
    let set = move |f: &dyn Fn(&mut WatchHealth)| {
        let mut h = health.write().unwrap_or_else(|e| e.into_inner());
        f(h.entry(kind).or_default());
    };
    set(&|_| {});
    tokio::spawn(async move {
        let stream = reflector::reflector(writer, watcher::watcher(api, config).default_backoff());
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Apply(o) | WatchEvent::Delete(o)) => {
                    set(&|h| h.error = None);
                    hub.report(change(&o));
                }
                Ok(WatchEvent::InitDone) => {
                    set(&|h| {
                        h.ready = true;
                        h.error = None;
                    });
                    hub.report(Change::Relisted);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(kind, error = %e, "watch failed; retrying with backoff");
                    let text = e.to_string();
                    set(&|h| h.error = Some(text.clone()));
                }
            }
        }
    });
    store
}
