//! Test fixtures shared by the operator's tests: builders of the objects a reconcile reads (pools,
//! actors, worker leases, Deployments), a [`Context`] whose caches hold them, and a mock API
//! server that answers a script of expected requests in order and fails on anything else.
//!
//! The mock follows kube-rs' controller-rs (`src/fixtures.rs`): a `tower_test` service pair
//! behind a real [`kube::Client`], so the requests checked are the ones the client really sends
//! (method, path, query, content type, body). A script is a list of [`Stage`]s; the requests of
//! one stage's chains may interleave (placement writes actors in parallel), while each chain and
//! the stages themselves are in order. The server fails the test on a request it does not expect
//! (printing it whole), on an expected request that never comes, and on any request after the
//! script — "nothing else is written".

use std::{
    collections::{BTreeMap, VecDeque},
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease};
use kube::{
    Client, Resource, ResourceExt,
    client::Body,
    runtime::{
        reflector::{self, Store},
        watcher,
    },
};
use serde_json::{Value, json};
use troupe_crds::{Actor, ActorPhase, ActorPool, labels};

use crate::{
    context::{Context, MANAGER},
    deployment::{WorkerSettings, build_deployment},
    revision::revision_of,
};

/// The namespace of every fixture.
pub const NS: &str = "ns";

/// The `renewTime` every test lease starts with; only a change of it counts as a renewal.
pub const RENEWED: &str = "2026-01-01T00:00:00.000000Z";

/// The lease duration of test workers.
pub const LEASE_SECONDS: i32 = 10;

/// How long a scenario may take, the reconcile and the script each; far more than either needs,
/// so that a timeout means a request that never came (or a reply that never went).
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(5);

fn from_json<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("a fixture deserializes")
}

fn to_json<K: serde::Serialize>(k: &K) -> Value {
    serde_json::to_value(k).expect("a fixture serializes")
}

// ---------------------------------------------------------------------------------------------
// Builders. The types are other crates', so the builders are traits: `ActorPool::test("p")`.

/// `ActorPool::test("p").replicas(3)`.
pub trait PoolFixture: Sized {
    /// A pool of 1 worker in [`NS`], with a uid (Deployments are found by owner), a
    /// resourceVersion, generation 1 and no status: as created, never reconciled.
    fn test(name: &str) -> Self;
    fn replicas(self, n: i32) -> Self;
    /// The revision of the pool's current template (`revision::revision_of`).
    fn current_revision(&self) -> String;
}

impl PoolFixture for ActorPool {
    fn test(name: &str) -> Self {
        from_json(json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool",
            "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                         "resourceVersion": "7", "generation": 1},
            "spec": {"replicas": 1,
                     "template": {"spec": {"containers": [{"name": "worker", "image": "troupe/worker:1"}]}}}
        }))
    }

    fn replicas(mut self, n: i32) -> Self {
        self.spec.replicas = n;
        self
    }

    fn current_revision(&self) -> String {
        revision_of(&self.spec.template)
    }
}

/// `Actor::test("a1").in_pool("p").on_worker("w-1").epoch(2)`.
pub trait ActorFixture: Sized {
    /// A new actor of pool `p` in [`NS`]: no worker label, no epoch, no status, version "1".
    fn test(name: &str) -> Self;
    fn in_pool(self, pool: &str) -> Self;
    /// Assigned to `worker` (the `troupe.dev/worker` label).
    fn on_worker(self, worker: &str) -> Self;
    /// The epoch of its assignment (the `troupe.dev/epoch` annotation).
    fn epoch(self, epoch: u64) -> Self;
    /// The resourceVersion it was read at.
    fn version(self, rv: &str) -> Self;
    /// Its status says `phase` on `worker`, under the epoch of its annotation (if any), as the
    /// worker that runs it writes it.
    fn phase(self, phase: ActorPhase, worker: Option<&str>) -> Self;
    /// Its status says Pending with condition Placed=False for `reason`, as the operator writes it.
    fn pending_because(self, reason: &str) -> Self;
}

impl ActorFixture for Actor {
    fn test(name: &str) -> Self {
        from_json(json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "Actor",
            "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                         "resourceVersion": "1", "generation": 1},
            "spec": {"pool": "p", "behavior": "echo"}
        }))
    }

    fn in_pool(mut self, pool: &str) -> Self {
        self.spec.pool = pool.to_string();
        self
    }

    fn on_worker(mut self, worker: &str) -> Self {
        self.labels_mut()
            .insert(labels::WORKER.to_string(), worker.to_string());
        self
    }

    fn epoch(mut self, epoch: u64) -> Self {
        self.annotations_mut()
            .insert(labels::EPOCH.to_string(), epoch.to_string());
        self
    }

    fn version(mut self, rv: &str) -> Self {
        self.metadata.resource_version = Some(rv.to_string());
        self
    }

    fn phase(mut self, phase: ActorPhase, worker: Option<&str>) -> Self {
        let epoch = self.assignment_epoch();
        let status = self.status.get_or_insert_with(Default::default);
        status.phase = Some(phase);
        status.worker = worker.map(str::to_string);
        status.epoch = epoch.and_then(|e| i64::try_from(e).ok());
        self
    }

    fn pending_because(mut self, reason: &str) -> Self {
        self.status = Some(from_json(json!({
            "phase": "Pending",
            "conditions": [{"type": "Placed", "status": "False", "reason": reason, "message": "",
                            "lastTransitionTime": RENEWED}]
        })));
        self
    }
}

/// `Lease::test_worker("w-1").pool("p").revision(&rev)`.
pub trait LeaseFixture: Sized {
    /// The membership lease of worker pod `name` in [`NS`]: held by it, renewed at [`RENEWED`],
    /// for [`LEASE_SECONDS`]; of no pool until [`LeaseFixture::pool`].
    fn test_worker(name: &str) -> Self;
    fn pool(self, pool: &str) -> Self;
    fn revision(self, revision: &str) -> Self;
    /// The same lease renewed: its `renewTime` changed to `at`.
    fn renewed_at(self, at: &str) -> Self;
}

impl LeaseFixture for Lease {
    fn test_worker(name: &str) -> Self {
        from_json(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": NS, "resourceVersion": "1"},
            "spec": {"holderIdentity": name, "renewTime": RENEWED, "leaseDurationSeconds": LEASE_SECONDS}
        }))
    }

    fn pool(mut self, pool: &str) -> Self {
        self.labels_mut()
            .insert(labels::POOL.to_string(), pool.to_string());
        self
    }

    fn revision(mut self, revision: &str) -> Self {
        self.labels_mut()
            .insert(labels::REVISION.to_string(), revision.to_string());
        self
    }

    fn renewed_at(mut self, at: &str) -> Self {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.renew_time = Some(from_json(json!(at)));
        self
    }
}

/// The Deployment of the pool's current revision exactly as the operator applies it (with the
/// default [`WorkerSettings`]): in the cache, it makes the reconcile apply nothing.
pub fn deployment_of(pool: &ActorPool) -> Deployment {
    deployment_with(pool, &WorkerSettings::default())
}

/// [`deployment_of`] with these settings.
pub fn deployment_with(pool: &ActorPool, settings: &WorkerSettings) -> Deployment {
    let mut d = build_deployment(pool, &pool.current_revision(), settings);
    if let Some(spec) = d.spec.as_mut() {
        spec.replicas = Some(pool.spec.replicas);
    }
    d.metadata.resource_version = Some("1".into());
    d
}

// ---------------------------------------------------------------------------------------------
// The context.

/// What the operator's caches (reflector stores) hold when the reconcile starts.
#[derive(Default)]
pub struct Caches {
    pub pools: Vec<ActorPool>,
    pub actors: Vec<Actor>,
    pub leases: Vec<Lease>,
    pub deployments: Vec<Deployment>,
}

/// A store filled as a watcher's initial list fills it.
fn store_of<K>(objects: Vec<K>) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(o));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    store
}

/// A [`Context`] over `caches` whose client talks to the returned mock API server, leading (its
/// leadership proof holds for a minute) with the default [`WorkerSettings`].
pub fn test_context(caches: Caches) -> (Arc<Context>, ApiServer) {
    test_context_with(caches, WorkerSettings::default())
}

/// [`test_context`] with these settings.
pub fn test_context_with(caches: Caches, settings: WorkerSettings) -> (Arc<Context>, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NS);
    let (poke, _) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Context::new(
        client,
        (
            store_of(caches.actors),
            store_of(caches.leases),
            store_of(caches.pools),
            store_of(caches.deployments),
        ),
        settings,
        "test".into(),
        None,
        poke,
    );
    ctx.leadership.renewed(
        troupe_crds::lease_clock::BootInstant::now(),
        Duration::from_secs(60),
        Duration::ZERO,
    );
    (ctx, ApiServer(handle))
}

/// Makes `lease` look as if this operator saw its last renewal `ago` (on its own clock) — a
/// worker that stopped renewing, or a watch that stopped bringing renewals.
pub fn last_renewal_seen(ctx: &Context, lease: &Lease, ago: Duration) {
    let then = Instant::now()
        .checked_sub(ago)
        .expect("the monotonic clock has run longer than a lease");
    ctx.leases_seen.observe(lease, then);
}

// ---------------------------------------------------------------------------------------------
// The mock API server.

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type SendResponse = tower_test::mock::SendResponse<Response<Body>>;

/// The API server the test context's client talks to; see [`run_scenario`].
pub struct ApiServer(Handle);

const MERGE_PATCH: &str = "application/merge-patch+json";
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// The path of an Actor.
pub fn actor_path(name: &str) -> String {
    format!("/apis/troupe.dev/v1alpha1/namespaces/{NS}/actors/{name}")
}

/// The path of an Actor's status.
pub fn actor_status_path(name: &str) -> String {
    format!("{}/status", actor_path(name))
}

/// The path of an ActorPool's status.
pub fn pool_status_path(name: &str) -> String {
    format!("/apis/troupe.dev/v1alpha1/namespaces/{NS}/actorpools/{name}/status")
}

/// The path of a Lease.
pub fn lease_path(name: &str) -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{name}")
}

/// The path of a Deployment.
pub fn deployment_path(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}")
}

const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

/// One request as it arrived.
struct Seen {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    content_type: Option<String>,
    body: Value,
}

impl Seen {
    async fn read(request: Request<Body>) -> Self {
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.expect("a request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        // Values here are plain words (field managers, `true`): no percent-decoding needed.
        let query = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (p.to_string(), String::new()),
            })
            .collect();
        Self {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query,
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body,
        }
    }
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "{} {}?{}", self.method, self.path, query.join("&"))?;
        if let Some(ct) = &self.content_type {
            write!(f, " ({ct})")?;
        }
        if !self.body.is_null() {
            let body = serde_json::to_string_pretty(&self.body).unwrap_or_default();
            write!(f, "\n{body}")?;
        }
        Ok(())
    }
}

/// What a body must be.
enum BodyCheck {
    Equals(Value),
    Includes(Value),
    With(Box<dyn FnOnce(&Value) + Send>),
}

/// How the mock answers a request.
pub enum Reply {
    /// 200 with this object.
    Object(Value),
    /// 200 with `onto` and the request body merged into it (RFC 7386, as a merge patch or a
    /// status apply of the fields the body sets would leave it), at resourceVersion `version`.
    Merged { onto: Value, version: String },
    /// This status code with the request body itself (an Event created).
    Echo(StatusCode),
    /// A failure: this status code with a `Status` object of this reason.
    Failure(StatusCode, &'static str),
}

impl Reply {
    /// `object` (serialized) with the request merged in, at `version`.
    pub fn merged<K: serde::Serialize>(object: &K, version: &str) -> Self {
        Reply::Merged {
            onto: to_json(object),
            version: version.to_string(),
        }
    }

    pub fn not_found() -> Self {
        Reply::Failure(StatusCode::NOT_FOUND, "NotFound")
    }

    pub fn conflict() -> Self {
        Reply::Failure(StatusCode::CONFLICT, "Conflict")
    }

    fn response(self, request_body: &Value, path: &str) -> Response<Body> {
        let (code, body) = match self {
            Reply::Object(v) => (StatusCode::OK, v),
            Reply::Merged { mut onto, version } => {
                merge(&mut onto, request_body);
                onto["metadata"]["resourceVersion"] = json!(version);
                (StatusCode::OK, onto)
            }
            Reply::Echo(code) => (code, request_body.clone()),
            Reply::Failure(code, reason) => (
                code,
                json!({
                    "apiVersion": "v1", "kind": "Status", "status": "Failure",
                    "reason": reason, "code": code.as_u16(),
                    "message": format!("{path}: {reason} (as the mock API server was told to answer)"),
                }),
            ),
        };
        Response::builder()
            .status(code)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&body).expect("json")))
            .expect("a response")
    }
}

/// A JSON merge patch (RFC 7386): `patch`'s nulls remove, objects merge, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let object = target.as_object_mut().expect("an object");
    for (k, v) in fields {
        if v.is_null() {
            object.remove(k);
        } else {
            merge(object.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Where `actual` does not include `expected`: every field `expected` names (a null included)
/// is in `actual` with an including value; arrays have the same length and include element by
/// element.
fn not_included(actual: &Value, expected: &Value, at: &str) -> Option<String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e.iter().find_map(|(k, ev)| match a.get(k) {
            Some(av) => not_included(av, ev, &format!("{at}/{k}")),
            None => Some(format!("{at}/{k} is missing (expected {ev})")),
        }),
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => a
            .iter()
            .zip(e)
            .enumerate()
            .find_map(|(i, (av, ev))| not_included(av, ev, &format!("{at}/{i}"))),
        _ if actual == expected => None,
        _ => Some(format!("{at} is {actual}, expected {expected}")),
    }
}

/// One request the script expects, and the answer to it.
pub struct Expected {
    what: String,
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    content_type: Option<&'static str>,
    /// Told apart from requests of the same method and path by these body fields (Events).
    identity: Option<Value>,
    checks: Vec<BodyCheck>,
    reply: Reply,
    before_reply: Option<Box<dyn FnOnce() + Send>>,
}

impl Expected {
    fn new(what: String, method: Method, path: String) -> Self {
        Self {
            what,
            method,
            path,
            query: BTreeMap::new(),
            content_type: None,
            identity: None,
            checks: Vec::new(),
            reply: Reply::Failure(StatusCode::NOT_IMPLEMENTED, "NoReplyScripted"),
            before_reply: None,
        }
    }

    /// A GET of `path`.
    pub fn get(what: &str, path: String) -> Self {
        Self::new(what.to_string(), Method::GET, path)
    }

    /// A JSON merge patch of `path` under the operator's field manager.
    pub fn merge_patch(what: &str, path: String) -> Self {
        let mut e = Self::new(what.to_string(), Method::PATCH, path);
        e.query = BTreeMap::from([("fieldManager".to_string(), MANAGER.to_string())]);
        e.content_type = Some(MERGE_PATCH);
        e
    }

    /// A forced server-side apply of `path` by the operator's field manager.
    pub fn apply(what: &str, path: String) -> Self {
        let mut e = Self::new(what.to_string(), Method::PATCH, path);
        e.query = BTreeMap::from([
            ("fieldManager".to_string(), MANAGER.to_string()),
            ("force".to_string(), "true".to_string()),
        ]);
        e.content_type = Some(APPLY_PATCH);
        e
    }

    /// An Event of `type_` (Normal, Warning) and `reason` about the object named `regarding`,
    /// created (echoed back) by the server.
    pub fn event(type_: &str, reason: &str, regarding: &str) -> Self {
        let mut e = Self::new(
            format!("Event {reason} about {regarding}"),
            Method::POST,
            EVENTS_PATH.to_string(),
        );
        e.content_type = Some("application/json");
        let identity = json!({"reason": reason, "regarding": {"name": regarding, "namespace": NS}});
        e.identity = Some(identity.clone());
        e.checks.push(BodyCheck::Includes(identity));
        e.checks.push(BodyCheck::Includes(json!({"type": type_})));
        e.reply = Reply::Echo(StatusCode::CREATED);
        e
    }

    /// The body is exactly `v`.
    pub fn body(mut self, v: Value) -> Self {
        self.checks.push(BodyCheck::Equals(v));
        self
    }

    /// The body has at least the fields of `v` (see [`not_included`]).
    pub fn body_includes(mut self, v: Value) -> Self {
        self.checks.push(BodyCheck::Includes(v));
        self
    }

    /// The body passes `f` (which asserts).
    pub fn body_with(mut self, f: impl FnOnce(&Value) + Send + 'static) -> Self {
        self.checks.push(BodyCheck::With(Box::new(f)));
        self
    }

    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Runs `f` once the request arrived and passed its checks, before the answer goes back.
    pub fn then(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.before_reply = Some(Box::new(f));
        self
    }

    /// Whether `seen` is a request for this expectation (then checked in full).
    fn is_for(&self, seen: &Seen) -> bool {
        seen.method == self.method
            && seen.path == self.path
            && self
                .identity
                .as_ref()
                .is_none_or(|id| not_included(&seen.body, id, "").is_none())
    }

    fn check_and_answer(self, seen: Seen, send: SendResponse) {
        let what = &self.what;
        assert_eq!(
            (&seen.method, &seen.path),
            (&self.method, &self.path),
            "{what}: another request came:\n{seen}"
        );
        assert_eq!(seen.query, self.query, "{what}: query parameters of\n{seen}");
        if let Some(ct) = self.content_type {
            assert_eq!(
                seen.content_type.as_deref(),
                Some(ct),
                "{what}: content type of\n{seen}"
            );
        }
        for check in self.checks {
            match check {
                BodyCheck::Equals(v) => assert!(
                    seen.body == v,
                    "{what}: body differs\nexpected {}\nin {seen}",
                    serde_json::to_string_pretty(&v).unwrap_or_default()
                ),
                BodyCheck::Includes(v) => {
                    if let Some(diff) = not_included(&seen.body, &v, "") {
                        panic!("{what}: {diff}\nin {seen}");
                    }
                }
                BodyCheck::With(f) => f(&seen.body),
            }
        }
        if let Some(f) = self.before_reply {
            f();
        }
        send.send_response(self.reply.response(&seen.body, &seen.path));
    }
}

/// A step of a script: chains of requests, each in its order, interleaved in any way (the
/// writes of different actors, made in parallel). A single request is one chain of one.
pub struct Stage(Vec<Vec<Expected>>);

impl Stage {
    pub fn interleaved(chains: Vec<Vec<Expected>>) -> Self {
        Stage(chains)
    }
}

impl From<Expected> for Stage {
    fn from(e: Expected) -> Self {
        Stage(vec![vec![e]])
    }
}

impl ApiServer {
    async fn next(&mut self, expecting: &str) -> (Seen, SendResponse) {
        match self.0.next_request().await {
            Some((request, send)) => (Seen::read(request).await, send),
            None => panic!("expected {expecting}, but the reconcile made no further request"),
        }
    }

    /// Answers `script`, then fails on any further request until the client is gone.
    async fn serve(mut self, script: Vec<Stage>) {
        for Stage(chains) in script {
            let mut chains: Vec<VecDeque<Expected>> = chains.into_iter().map(VecDeque::from).collect();
            loop {
                chains.retain(|c| !c.is_empty());
                if chains.is_empty() {
                    break;
                }
                let heads: Vec<&str> = chains.iter().map(|c| c[0].what.as_str()).collect();
                let expecting = match heads.as_slice() {
                    [one] => one.to_string(),
                    _ => format!("one of [{}]", heads.join("; ")),
                };
                let (seen, send) = self.next(&expecting).await;
                let Some(chain) = chains.iter_mut().find(|c| c[0].is_for(&seen)) else {
                    panic!("expected {expecting}, but the reconcile sent\n{seen}");
                };
                let e = chain.pop_front().expect("a non-empty chain");
                e.check_and_answer(seen, send);
            }
        }
        if let Some((request, _)) = self.0.next_request().await {
            panic!(
                "the script is done, but the reconcile sent\n{}",
                Seen::read(request).await
            );
        }
    }
}

/// Runs `run(ctx)` (a reconcile) against `server` answering `script`, and returns its result
/// once the script is done and nothing else came. `ctx` must be the only handle on the context,
/// so that the client is gone when `run` is: that is how the server knows no request is left.
pub async fn run_scenario<T, F, Fut>(ctx: Arc<Context>, server: ApiServer, script: Vec<Stage>, run: F) -> T
where
    F: FnOnce(Arc<Context>) -> Fut,
    Fut: Future<Output = T>,
{
    assert_eq!(
        Arc::strong_count(&ctx),
        1,
        "run_scenario needs the only handle on the Context"
    );
    let serving = tokio::spawn(server.serve(script));
    let outcome = tokio::time::timeout(SCENARIO_TIMEOUT, run(ctx)).await;
    // The reconcile and its client are gone here, so the server sees the end of the requests.
    match tokio::time::timeout(SCENARIO_TIMEOUT, serving).await {
        Err(_) => panic!("the mock API server's script did not end within {SCENARIO_TIMEOUT:?}"),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("the mock API server's task failed: {e}"),
        Ok(Ok(())) => {}
    }
    outcome.unwrap_or_else(|_| {
        panic!(
            "the reconcile did not end within {SCENARIO_TIMEOUT:?} (waiting for an answer that never came?)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusion_names_the_first_field_that_differs() {
        let actual = json!({"a": {"b": 1, "c": [1, 2]}, "d": null});
        assert_eq!(not_included(&actual, &json!({"a": {"b": 1}}), ""), None);
        assert_eq!(not_included(&actual, &json!({"d": null}), ""), None);
        assert_eq!(
            not_included(&actual, &json!({"a": {"b": 2}}), ""),
            Some("/a/b is 1, expected 2".into())
        );
        assert!(not_included(&actual, &json!({"a": {"c": [1]}}), "").is_some());
        assert!(not_included(&actual, &json!({"e": null}), "").is_some());
    }

    #[test]
    fn a_merge_patch_removes_nulls_and_merges_objects() {
        let mut target = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "x": 1});
        merge(
            &mut target,
            &json!({"metadata": {"labels": {"a": null, "c": "3"}}, "x": [2]}),
        );
        assert_eq!(
            target,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "x": [2]})
        );
    }
}
