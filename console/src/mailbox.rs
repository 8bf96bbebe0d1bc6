//! Workers' mailbox depth, where the console can read it.
//!
//! Nothing in the API holds it: a worker counts the messages waiting in its actors' mailboxes in
//! its own Prometheus metrics (`troupe_worker_mailbox_depth`, by behaviour; `/metrics` on its
//! message API's port, served without a token, docs/worker.md), at the address its Lease
//! announces (`troupe.dev/address`). So the console reads those, as the operator's analysis
//! does, rather than having workers write a number into the API every few seconds.
//!
//! Only for the pools whose page someone has looked at in the last [`LOOKED`], and only their
//! live workers: every [`POLL`], and at once when a pool's page is first opened. A depth that
//! changed is reported to the hub as a change of the pool's workers, so open pool pages refresh.
//! Where the pod network is out of reach (`kubectl troupe console` on a laptop, against a real
//! cluster) nothing can be read, and the page says so and why; the operator's console in the
//! cluster reaches the workers. Only `GET /metrics` is ever sent, with no credential.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use tokio::sync::Notify;
use troupe_client::messages::{lease_address, live, plain_address};
use troupe_crds::labels;

use crate::{
    live::{Change, Hub},
    watch::Stores,
};

/// How often the workers of the pools looked at are read.
pub const POLL: Duration = Duration::from_secs(5);
/// How long after its page was last rendered a pool's workers are still read: an open page is
/// rendered again at every change of its pool, and a browser that went away costs nothing after.
pub const LOOKED: Duration = Duration::from_secs(60);
/// A worker's answer, from connecting to the last byte.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Workers read at once.
const IN_FLIGHT: usize = 16;
/// A metrics page larger than this is not read (a worker's is a few KiB).
const MAX_BODY: usize = 1 << 20;
/// The gauge read.
pub const METRIC: &str = "troupe_worker_mailbox_depth";

/// A worker's mailbox depth as the console knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mailbox {
    /// Messages waiting in its actors' mailboxes, summed, as its metrics said at `read_at`.
    Known { messages: i64, read_at: Timestamp },
    /// Not known, and why (a sentence for the page).
    Unknown(String),
}

impl Mailbox {
    /// Whether two readings differ for a person looking at the page (the time of a reading
    /// alone is no change: open pages are not refreshed every [`POLL`] for it).
    fn differs(&self, other: &Mailbox) -> bool {
        match (self, other) {
            (Mailbox::Known { messages: a, .. }, Mailbox::Known { messages: b, .. }) => a != b,
            (a, b) => a != b,
        }
    }
}

/// Why a worker's depth is not shown before its first reading.
pub const NOT_READ_YET: &str =
    "not read yet: the console reads the workers' metrics every 5 s while their pool's page is open";
/// Why an expired worker's depth is not shown.
pub const EXPIRED: &str = "its Lease has expired: only live workers are read";

type PoolKey = (String, String);
type WorkerKey = (String, String);

#[derive(Default)]
struct State {
    /// Pools (namespace, name) by when their page was last rendered.
    looked: HashMap<PoolKey, Instant>,
    /// Workers (namespace, Lease name) by their last reading.
    read: HashMap<WorkerKey, Mailbox>,
}

/// The readings, shared by the pages and the task that reads the workers.
#[derive(Clone, Default)]
pub struct Mailboxes {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl Mailboxes {
    /// Readings and the task that makes them (it runs as long as the process).
    pub fn start(stores: Stores, hub: Hub) -> Mailboxes {
        let m = Mailboxes::default();
        tokio::spawn(m.clone().run(stores, hub, client()));
        m
    }

    /// Pool `ns/pool`'s page is being rendered: its workers are read from now on (at once, the
    /// first time), and this is what is known of the namespace's workers, by Lease name.
    pub fn looked_at(&self, ns: &str, pool: &str) -> BTreeMap<String, Mailbox> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let key = (ns.to_string(), pool.to_string());
        let fresh = s
            .looked
            .insert(key, now)
            .is_none_or(|then| now.duration_since(then) >= LOOKED);
        if fresh {
            self.wake.notify_one();
        }
        s.read
            .iter()
            .filter(|((n, _), _)| n == ns)
            .map(|((_, w), m)| (w.clone(), m.clone()))
            .collect()
    }

    async fn run(self, stores: Stores, hub: Hub, http: reqwest::Client) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.wake.notified() => {}
            }
            self.poll(&stores, &hub, &http).await;
        }
    }

    /// Reads the live workers of the pools looked at; reports the pools whose readings changed.
    pub async fn poll(&self, stores: &Stores, hub: &Hub, http: &reqwest::Client) {
        let pools: Vec<PoolKey> = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            s.looked.retain(|_, then| now.duration_since(*then) < LOOKED);
            let pools: Vec<PoolKey> = s.looked.keys().cloned().collect();
            if pools.is_empty() {
                // No pool page open: nothing to read, and no reading kept current.
                s.read.clear();
                return;
            }
            pools
        };
        let now = Timestamp::now();
        let workers: Vec<(WorkerKey, String, Option<String>)> = stores
            .leases
            .state()
            .iter()
            .filter(|l| live(l, now))
            .filter_map(|l| {
                let ns = l.namespace().unwrap_or_default();
                let pool = l.labels().get(labels::POOL)?.clone();
                pools
                    .contains(&(ns.clone(), pool.clone()))
                    .then(|| ((ns, l.name_any()), pool, lease_address(l)))
            })
            .collect();
        let readings: Vec<(WorkerKey, String, Mailbox)> = stream::iter(workers)
            .map(|(worker, pool, addr)| async move {
                let m = read(http, addr.as_deref()).await;
                (worker, pool, m)
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let mut changed: BTreeSet<PoolKey> = BTreeSet::new();
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            // Workers no longer read (expired, gone, their pool no longer looked at) are
            // forgotten: a reading is only shown while it is kept current.
            let old = std::mem::take(&mut s.read);
            for (worker, pool, m) in readings {
                if old.get(&worker).is_none_or(|o| o.differs(&m)) {
                    changed.insert((worker.0.clone(), pool));
                }
                s.read.insert(worker, m);
            }
        }
        for (namespace, pool) in changed {
            hub.report(Change::Lease { namespace, pool });
        }
    }
}

/// The client workers are read with.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        // Pod addresses: straight, never through a proxy from the environment, and nowhere a
        // redirect would send it.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client builds")
}

/// One worker's reading, from `GET http://ADDRESS/metrics`.
async fn read(http: &reqwest::Client, addr: Option<&str>) -> Mailbox {
    let Some(addr) = addr else {
        return Mailbox::Unknown("its Lease announces no address to read its metrics at".into());
    };
    if !plain_address(addr) {
        return Mailbox::Unknown(format!("its Lease's address {addr:?} is not a plain host:port"));
    }
    let unreachable = |what: &str| {
        Mailbox::Unknown(format!(
            "its metrics at {addr} {what}: a console outside the pod network (kubectl troupe console on your machine, against a cluster) cannot reach workers; the operator's console in the cluster can"
        ))
    };
    let resp = match http.get(format!("http://{addr}/metrics")).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return unreachable("did not answer within 2 s"),
        Err(_) => return unreachable("could not be reached"),
    };
    if !resp.status().is_success() {
        return Mailbox::Unknown(format!("its metrics at {addr} answered {}", resp.status()));
    }
    let body = match troupe_net::read_response_body(resp, MAX_BODY).await {
        Ok(body) => body,
        Err(troupe_net::BodyError::TooLarge { .. }) => {
            return Mailbox::Unknown(format!("its metrics at {addr} are over 1 MiB"));
        }
        Err(troupe_net::BodyError::Failed(_)) => return unreachable("could not be read to the end"),
    };
    match depth(&String::from_utf8_lossy(&body)) {
        Some(messages) => Mailbox::Known {
            messages,
            read_at: Timestamp::now(),
        },
        None => Mailbox::Unknown(format!(
            "its metrics at {addr} are not a Troupe worker's (no troupe_worker_ metric)"
        )),
    }
}

/// The messages waiting on a worker: its `troupe_worker_mailbox_depth` summed over behaviours.
/// A worker that hosts no actor has no such series, but its other metrics say it is a worker:
/// then 0. `None` when the text is not a Troupe worker's.
pub fn depth(metrics: &str) -> Option<i64> {
    let mut worker = false;
    let mut sum = 0.0;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        worker |= line.starts_with("troupe_worker_");
        let Some(rest) = line.strip_prefix(METRIC) else {
            continue;
        };
        // `name{labels} value`: the value follows the closing brace (label values may hold
        // spaces), or the name itself when there are no labels.
        let value = match rest.strip_prefix('{') {
            Some(labelled) => labelled.rsplit_once('}').map(|(_, v)| v),
            None => rest.starts_with(' ').then_some(rest),
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            sum += v;
        }
    }
    worker.then_some(sum.round() as i64)
}
