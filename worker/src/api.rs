//! The worker's HTTP API: tell and ask an actor by namespace and name, forwarded to the worker
//! that hosts it; health endpoints; Prometheus metrics.
//!
//! ```text
//! POST /v1/namespaces/{ns}/actors/{name}/tell          body: any JSON   → 202
//! POST /v1/namespaces/{ns}/actors/{name}/ask?timeout=5s body: any JSON  → 200 with the answer
//! GET  /livez /readyz /startupz /metrics
//! ```
//!
//! Messages need `Authorization: Bearer <token>` (the pool's token, from a Secret through env;
//! there is no default: without one the message API answers 503). Errors are JSON
//! `{"error": "..."}`: 400 malformed body, 401 no or wrong token, 404 unknown actor, 409 paused,
//! 429 mailbox full, 503 actor moving or not running, 504 no answer in time.

// Handlers return ready HTTP responses as their error values; boxing them gains nothing here.
#![allow(clippy::result_large_err)]

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, Query, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use troupe_crds::{Actor, labels};

use crate::{
    behavior::{ActorError, Router as ActorRouter},
    host::{ActorKey, DeliveryError, Host},
    membership::ADDRESS_ANNOTATION,
    peer,
};

/// Marks a request one worker forwarded to another, so it is never forwarded twice.
const FORWARDED: &str = "x-troupe-forwarded";

/// Largest message body accepted (read only once the token matched; 413 beyond).
pub const MAX_BODY: usize = 1024 * 1024;

/// The longest an ask may wait for its answer (`?timeout=`, default 5 s).
pub const MAX_ASK_TIMEOUT: Duration = Duration::from_secs(60);
/// A request may take this much longer than what it waits for (an ask's timeout, a blocked
/// mailbox): reading a body of at most 1 MiB and a forward to another worker fit in it.
const REQUEST_MARGIN: Duration = Duration::from_secs(10);
/// A client must send a request's headers within this, and an idle kept-alive connection is
/// closed after it. Clients are other workers, the operator's scrapes and probes, and callers
/// of the message API, all sending whole requests at once: 10 s allows a slow network.
const HEADER_READ: Duration = Duration::from_secs(10);
/// Open connections: callers keep connections alive, and each idle one costs little (a task and
/// a small buffer, some 16 KiB); 1024 is far above the fan-in of a pool and bounds that to 16 MiB.
const MAX_CONNECTIONS: usize = 1024;
/// Requests handled at once. A message body is buffered (at most 1 MiB, after the token was
/// checked), so this bounds what a burst can hold to 256 MiB; an ask or a tell that waits on a
/// full mailbox holds its slot, and 256 is eight times the benchmark's concurrency of 32.
const MAX_IN_FLIGHT: usize = 256;
/// On shutdown (after the mailboxes drained), how long answers in flight may take to go out.
const DRAIN: Duration = Duration::from_secs(5);
/// How long connecting to another worker may take: it is on the pod network (milliseconds);
/// one that does not accept within 2 s is gone, and the caller is better told so.
const FORWARD_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest answer read from another worker: four times the largest message.
const FORWARDED_ANSWER_MAX: usize = 4 * MAX_BODY;

/// The limits of the worker's server. A request waits at most the longest ask or, when the
/// mailbox policy is Block, `block_timeout` for room; it gets [`REQUEST_MARGIN`] more.
pub fn limits(block_timeout: Duration) -> troupe_net::Limits {
    troupe_net::Limits {
        header_read: HEADER_READ,
        request: MAX_ASK_TIMEOUT.max(block_timeout) + REQUEST_MARGIN,
        connections: MAX_CONNECTIONS,
        in_flight: MAX_IN_FLIGHT,
        drain: DRAIN,
    }
}

/// What the API serves from.
pub struct ApiState {
    pub host: Arc<Host>,
    pub token: Option<String>,
    pub forwarder: Arc<Forwarder>,
    pub started: AtomicBool,
    pub ready: AtomicBool,
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, axum::Json(json!({ "error": message.into() }))).into_response()
}

fn delivery_error(e: DeliveryError) -> Response {
    let code = match &e {
        DeliveryError::NotHere(_) => StatusCode::SERVICE_UNAVAILABLE,
        DeliveryError::Paused(_) => StatusCode::CONFLICT,
        DeliveryError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        DeliveryError::Full { .. } => StatusCode::TOO_MANY_REQUESTS,
        DeliveryError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        DeliveryError::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(code, e.to_string())
}

/// The message routes, behind bearer-token auth; health and metrics without.
pub fn router(state: Arc<ApiState>) -> Router {
    let messages = Router::new()
        .route("/v1/namespaces/{namespace}/actors/{name}/tell", post(tell))
        .route("/v1/namespaces/{namespace}/actors/{name}/ask", post(ask))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .merge(messages)
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/startupz", get(startupz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Constant-time comparison of the bearer token.
pub fn token_matches(expected: &str, headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

async fn authenticate(State(state): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    let Some(expected) = &state.token else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the message API is disabled: the worker has no token (set TROUPE_API_TOKEN from a Secret)",
        );
    };
    if !token_matches(expected, req.headers()) {
        let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static header"));
        return r;
    }
    next.run(req).await
}

async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    if state.ready.load(Ordering::SeqCst) && !state.host.is_fenced() {
        "ok".into_response()
    } else {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting, fenced or shutting down",
        )
    }
}

async fn startupz(State(state): State<Arc<ApiState>>) -> Response {
    if state.started.load(Ordering::SeqCst) {
        "ok".into_response()
    } else {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: waiting for the lease and the first list of actors",
        )
    }
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    state.host.snapshot();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.host.metrics().render(),
    )
        .into_response()
}

/// The message body, read only now (after the token was checked) and at most [`MAX_BODY`].
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    troupe_net::read_request_body(headers, body, MAX_BODY)
        .await
        .map_err(|e| match e {
            troupe_net::BodyError::TooLarge { .. } => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("message larger than {MAX_BODY} bytes"),
            ),
            troupe_net::BodyError::Failed(why) => {
                error(StatusCode::BAD_REQUEST, format!("reading the body: {why}"))
            }
        })
}

fn parse_body(body: &Bytes) -> Result<Value, Response> {
    if body.len() > MAX_BODY {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("message larger than {MAX_BODY} bytes"),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("the body must be JSON: {e}")))
}

#[derive(Deserialize)]
struct AskQuery {
    timeout: Option<String>,
}

async fn tell(
    State(state): State<Arc<ApiState>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(&headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let msg = match parse_body(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !state.ready.load(Ordering::SeqCst) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the worker is shutting down");
    }
    let key = ActorKey::new(namespace, name);
    match state.host.tell(&key, msg.clone()).await {
        Ok(()) => (StatusCode::ACCEPTED, axum::Json(json!({"accepted": true}))).into_response(),
        Err(DeliveryError::NotHere(_)) if !headers.contains_key(FORWARDED) => {
            state.forwarder.forward(&key, "tell", &body, None).await
        }
        Err(e) => delivery_error(e),
    }
}

async fn ask(
    State(state): State<Arc<ApiState>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<AskQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(&headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let msg = match parse_body(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let timeout = match q.timeout.as_deref().map(troupe_crds::duration::parse_duration) {
        None => Duration::from_secs(5),
        Some(Ok(d)) => d.min(MAX_ASK_TIMEOUT),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("timeout: {e}")),
    };
    if !state.ready.load(Ordering::SeqCst) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the worker is shutting down");
    }
    let key = ActorKey::new(namespace, name);
    match state.host.ask(&key, msg, timeout).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(DeliveryError::NotHere(_)) if !headers.contains_key(FORWARDED) => {
            state
                .forwarder
                .forward(&key, "ask", &body, q.timeout.as_deref())
                .await
        }
        Err(e) => delivery_error(e),
    }
}

/// Finds the worker hosting an actor (the Actor's worker label, then that worker's Lease
/// address) and passes requests on to it.
pub struct Forwarder {
    client: Option<Client>,
    http: reqwest::Client,
    token: Option<String>,
    pod: String,
    addresses: Mutex<HashMap<(String, String), (String, Instant)>>,
    /// Fixed actor → address routes, used instead of the API (benchmarks, tests).
    static_routes: HashMap<ActorKey, String>,
}

/// How long a worker's address is reused before it is looked up again.
const ADDRESS_TTL: Duration = Duration::from_secs(5);

impl Forwarder {
    pub fn new(client: Option<Client>, token: Option<String>, pod: String) -> Self {
        Self {
            client,
            http: reqwest::Client::builder()
                // The longest ask, and a little more for the hop.
                .timeout(MAX_ASK_TIMEOUT + Duration::from_secs(5))
                .connect_timeout(FORWARD_CONNECT_TIMEOUT)
                // The token goes to the worker the Lease names, and nowhere it redirects to.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client builds"),
            token,
            pod,
            addresses: Mutex::new(HashMap::new()),
            static_routes: HashMap::new(),
        }
    }

    /// A forwarder with fixed routes and no API access.
    pub fn with_static_routes(token: Option<String>, routes: HashMap<ActorKey, String>) -> Self {
        let mut f = Self::new(None, token, String::new());
        f.static_routes = routes;
        f
    }

    /// Where the actor's worker listens, or the response explaining why there is none.
    async fn locate(&self, key: &ActorKey) -> Result<String, Response> {
        if let Some(addr) = self.static_routes.get(key) {
            return Ok(addr.clone());
        }
        let Some(client) = &self.client else {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("actor {key} is not hosted by this worker"),
            ));
        };
        let actor = Api::<Actor>::namespaced(client.clone(), &key.namespace)
            .get_opt(&key.name)
            .await
            .map_err(|e| error(StatusCode::BAD_GATEWAY, format!("looking up actor {key}: {e}")))?
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("actor {key} does not exist")))?;
        let worker = actor
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::WORKER))
            .cloned()
            .ok_or_else(|| {
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("actor {key} is not placed on a worker yet"),
                )
            })?;
        if worker == self.pod {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("actor {key} is moving to this worker; retry shortly"),
            ));
        }
        let cache_key = (key.namespace.clone(), worker.clone());
        if let Some((addr, at)) = self
            .addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cache_key)
            && at.elapsed() < ADDRESS_TTL
        {
            return Ok(addr.clone());
        }
        let lease = Api::<Lease>::namespaced(client.clone(), &key.namespace)
            .get_opt(&worker)
            .await
            .map_err(|e| {
                error(
                    StatusCode::BAD_GATEWAY,
                    format!("looking up worker {worker}: {e}"),
                )
            })?
            .ok_or_else(|| {
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("worker {worker} of actor {key} is gone; it is moving"),
                )
            })?;
        // The pool's token goes only to a worker of the actor's pool, at a plain address.
        let lease_pool = lease.metadata.labels.as_ref().and_then(|l| l.get(labels::POOL));
        if lease_pool != Some(&actor.spec.pool) {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the Lease of worker {worker} is not of pool {}: not forwarding to it",
                    actor.spec.pool
                ),
            ));
        }
        let addr = lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ADDRESS_ANNOTATION))
            .cloned()
            .ok_or_else(|| {
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("worker {worker} has no address yet"),
                )
            })?;
        peer::check_address(&addr).map_err(|why| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("worker {worker}: {why}; not forwarding to it"),
            )
        })?;
        self.addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cache_key, (addr.clone(), Instant::now()));
        Ok(addr)
    }

    async fn send(
        &self,
        addr: &str,
        key: &ActorKey,
        verb: &str,
        body: &[u8],
        timeout: Option<&str>,
    ) -> Result<(StatusCode, Bytes), String> {
        let url = peer::message_url(addr, key, verb, timeout)?;
        let mut req = self
            .http
            .post(url)
            .header(FORWARDED, "1")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("forwarding to {addr}: {}", e.without_url()))?;
        let code = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let bytes = troupe_net::read_response_body(resp, FORWARDED_ANSWER_MAX)
            .await
            .map_err(|e| format!("the answer of worker {addr}: {e}"))?;
        Ok((code, bytes))
    }

    /// Passes a request on and returns the hosting worker's answer as is.
    pub async fn forward(&self, key: &ActorKey, verb: &str, body: &[u8], timeout: Option<&str>) -> Response {
        // A name no actor can have is never looked up (nor put in a URL).
        if let Err(why) = peer::check_key(key) {
            return error(
                StatusCode::NOT_FOUND,
                format!("actor {key} does not exist: {why}"),
            );
        }
        let addr = match self.locate(key).await {
            Ok(a) => a,
            Err(r) => return r,
        };
        match self.send(&addr, key, verb, body, timeout).await {
            Ok((code, bytes)) => (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        }
    }
}

#[async_trait::async_trait]
impl ActorRouter for Forwarder {
    async fn tell(&self, namespace: &str, actor: &str, msg: Value) -> Result<(), ActorError> {
        let key = ActorKey::new(namespace, actor);
        peer::check_key(&key).map_err(|why| ActorError::new(format!("cannot reach {key}: {why}")))?;
        let addr = self
            .locate(&key)
            .await
            .map_err(|r| ActorError::new(format!("cannot reach {key}: HTTP {}", r.status())))?;
        let body = serde_json::to_vec(&msg).map_err(|e| ActorError::new(e.to_string()))?;
        match self.send(&addr, &key, "tell", &body, None).await {
            Ok((code, _)) if code.is_success() => Ok(()),
            Ok((code, bytes)) => Err(ActorError::new(format!(
                "{key} refused the message: HTTP {code}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
            Err(e) => Err(ActorError::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;
    use crate::{builtin, host::HostConfig, metrics::Metrics};

    async fn app(token: Option<&str>) -> (Router, Arc<Host>) {
        let host = Host::start(HostConfig::default(), builtin::registry(), Metrics::new())
            .await
            .unwrap();
        let state = Arc::new(ApiState {
            host: host.clone(),
            token: token.map(str::to_string),
            forwarder: Arc::new(Forwarder::new(None, None, "me".into())),
            started: AtomicBool::new(true),
            ready: AtomicBool::new(true),
        });
        (router(state), host)
    }

    fn spec(behavior: &str, paused: bool) -> troupe_crds::ActorSpec {
        serde_json::from_value(json!({"pool": "p", "behavior": behavior, "paused": paused})).unwrap()
    }

    async fn call(app: &Router, path: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
        let mut req = axum::http::Request::post(path).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let code = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), MAX_BODY).await.unwrap();
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn messages_need_the_bearer_token() {
        let (app, host) = app(Some("s3cret")).await;
        host.upsert(ActorKey::new("ns", "e"), spec("echo", false), Some(1))
            .await;
        let path = "/v1/namespaces/ns/actors/e/ask";
        assert_eq!(call(&app, path, None, "1").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(
            call(&app, path, Some("wrong"), "1").await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&app, path, Some("s3cret"), "\"hi\"").await,
            (StatusCode::OK, json!("hi"))
        );
    }

    #[tokio::test]
    async fn without_a_configured_token_the_message_api_is_off_but_health_answers() {
        let (app, _) = app(None).await;
        let (code, body) = call(&app, "/v1/namespaces/ns/actors/e/tell", Some("x"), "1").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body["error"].as_str().unwrap().contains("no token"));
        let resp = app
            .clone()
            .oneshot(axum::http::Request::get("/livez").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn errors_map_to_the_statuses_clients_expect() {
        let (app, host) = app(Some("t")).await;
        host.upsert(ActorKey::new("ns", "paused"), spec("echo", true), Some(1))
            .await;
        host.upsert(ActorKey::new("ns", "e"), spec("echo", false), Some(1))
            .await;
        let t = Some("t");
        let (code, body) = call(&app, "/v1/namespaces/ns/actors/e/tell", t, "{not json").await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(body["error"].as_str().unwrap().contains("must be JSON"));
        assert_eq!(
            call(&app, "/v1/namespaces/ns/actors/paused/tell", t, "1").await.0,
            StatusCode::CONFLICT
        );
        assert_eq!(
            call(&app, "/v1/namespaces/ns/actors/nobody/tell", t, "1").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call(&app, "/v1/namespaces/ns/actors/e/tell", t, "1").await.0,
            StatusCode::ACCEPTED
        );
        assert_eq!(
            call(&app, "/v1/namespaces/ns/actors/e/ask?timeout=soon", t, "1")
                .await
                .0,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn the_token_must_match_exactly() {
        let mut h = HeaderMap::new();
        assert!(!token_matches("abc", &h));
        h.insert(header::AUTHORIZATION, "Bearer abcd".parse().unwrap());
        assert!(!token_matches("abc", &h));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(token_matches("abc", &h));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(!token_matches("abc", &h));
    }
}

#[cfg(test)]
mod socket_tests;
