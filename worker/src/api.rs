//! The worker's HTTP API: tell and ask an actor by namespace and name, forwarded to the worker
//! that hosts it; health endpoints; Prometheus metrics.
//!
//! ```text
//! POST /v1/namespaces/{ns}/actors/{name}/tell          body: any JSON   → 202
//! POST /v1/namespaces/{ns}/actors/{name}/ask?timeout=5s body: any JSON  → 200 with the answer
//! GET  /v1/namespaces/{ns}/actors/{name}/journal?limit=100  → 200 {"entries": [...], "truncated"}
//! GET  /livez /readyz /startupz /metrics
//! ```
//!
//! Messages need `Authorization: Bearer <token>` (the pool's token, from a Secret through env;
//! there is no default: without one the message API answers 503). Errors are JSON
//! `{"error": "..."}`: 400 malformed body, 401 no or wrong token, 404 unknown actor, 409 paused,
//! 429 mailbox full, 503 actor moving or not running, 504 no answer in time.
//!
//! Here: routes, authentication, bodies; `forward.rs`: passing messages to the hosting worker;
//! `moving.rs`: messages that wait while their actor moves.

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
    host::{ActorKey, DeliveryError, HandoffSource, Host, PreviousHolder},
    membership::ADDRESS_ANNOTATION,
    peer,
    store::{JOURNAL_READ_MAX, JournalEntry},
};

/// Marks a request one worker forwarded to another, so it is never forwarded twice.
const FORWARDED: &str = "x-troupe-forwarded";
/// On a handoff answer: when the worker stopped taking messages for the actor (Unix µs).
const STOPPED_AT: &str = "x-troupe-stopped-at";
/// Marks a 503 that means "the actor is moving: look again" (see `moving.rs`).
const MOVING: &str = "x-troupe-moving";

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
/// The largest handed-over state read back: the store keeps at most 1 MiB of JSON per state.
const HANDOFF_ANSWER_MAX: usize = crate::host::MAX_STATE_BYTES + 1024;

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

/// Delivers a message as this worker's span of a trace (see [`crate::trace`]): the one its
/// `traceparent` names, or, without a valid header, a new trace it starts. The message carries
/// it, logs show it, a forward sends it on, and the answer names it in `traceresponse` (so a
/// caller that sent no `traceparent` learns the trace its message started). `delivered` is
/// boxed once: the trace's wrappers then move a pointer, not the request's large future.
fn traced<D: Future<Output = Response>>(
    headers: &HeaderMap,
    key: &ActorKey,
    verb: &'static str,
    delivered: D,
) -> impl Future<Output = Response> + use<D> {
    let parent = headers
        .get(crate::trace::HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::trace::TraceParent::parse);
    let hop = crate::trace::Hop::Request { verb };
    let handled = crate::trace::within(
        parent,
        hop,
        key,
        Box::pin(async move { (crate::trace::current(), delivered.await) }),
    );
    async move {
        let (trace, mut response) = handled.await;
        if let Some(value) = trace.and_then(|t| header::HeaderValue::try_from(t.to_string()).ok()) {
            response
                .headers_mut()
                .insert(crate::trace::RESPONSE_HEADER, value);
        }
        response
    }
}

/// A worker that has not started yet (no lease, assignments not read) takes no message: the
/// answer says to look again (a worker that forwarded it waits, see `moving`). One that is
/// leaving (SIGTERM) still takes messages for the actors it runs until they moved away, and
/// afterwards its host says they are not here.
fn not_started(state: &ApiState, key: &ActorKey) -> Option<Response> {
    (!state.started.load(Ordering::SeqCst)).then(|| {
        forward::moving(format!(
            "this worker is starting: actor {key} takes messages here once it has read its assignments"
        ))
    })
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
        .route("/v1/namespaces/{namespace}/actors/{name}/handoff", get(handoff))
        .route("/v1/namespaces/{namespace}/actors/{name}/journal", get(journal))
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
    let key = ActorKey::new(namespace, name);
    if let Some(refused) = not_started(&state, &key) {
        return refused;
    }
    let forwarded = headers.contains_key(FORWARDED);
    let delivered = moving::deliver(&state, &key, "tell", &body, None, forwarded, || async {
        state.host.tell(&key, msg.clone()).await?;
        Ok((StatusCode::ACCEPTED, axum::Json(json!({"accepted": true}))).into_response())
    });
    traced(&headers, &key, "tell", delivered).await
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
    let key = ActorKey::new(namespace, name);
    if let Some(refused) = not_started(&state, &key) {
        return refused;
    }
    let forwarded = headers.contains_key(FORWARDED);
    let delivered = moving::deliver(
        &state,
        &key,
        "ask",
        &body,
        q.timeout.as_deref(),
        forwarded,
        || async {
            let answer = state.host.ask(&key, msg.clone(), timeout).await?;
            Ok(axum::Json(answer).into_response())
        },
    );
    traced(&headers, &key, "ask", delivered).await
}

mod forward;
mod moving;

pub use forward::Forwarder;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod socket_tests;

#[cfg(test)]
mod trace_tests;

#[derive(Deserialize)]
struct HandoffQuery {
    epoch: u64,
}

/// The state this worker kept for `name` when its assignment `epoch` ended here (a planned
/// move), handed over once to the worker that runs the actor next; 404 when there is none.
#[derive(Deserialize)]
struct JournalQuery {
    limit: Option<u32>,
}

/// Entries a journal read returns unless asked (`?limit=`, at most [`JOURNAL_READ_MAX`]).
const JOURNAL_DEFAULT_LIMIT: u32 = 100;
/// The largest journal answer: entries past it are left out (`"truncated": true`). As much as
/// `kubectl troupe journal` reads of an answer.
pub const JOURNAL_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The actor's journal, newest first, read from the pool's store. Only for actors of this
/// worker's own pool (its token is the pool's): another pool's journal is another pool's data.
async fn journal(
    State(state): State<Arc<ApiState>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<JournalQuery>,
) -> Response {
    let key = ActorKey::new(namespace, name);
    let mine = &state.host.config().pool;
    match state.forwarder.pool_of(&key).await {
        Err(response) => return response,
        Ok(Some(pool)) if pool != *mine => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "actor {key} is of pool {pool}, not of this worker's pool {mine}: ask a worker of pool {pool}"
                ),
            );
        }
        Ok(_) => {}
    }
    let limit = q
        .limit
        .unwrap_or(JOURNAL_DEFAULT_LIMIT)
        .clamp(1, JOURNAL_READ_MAX);
    match state.host.journal(&key, limit).await {
        None => error(
            StatusCode::CONFLICT,
            format!(
                "pool {mine} keeps no state store (persistence mode {}): it has no journal; use mode Interval or EveryMessage",
                state.host.config().persistence.as_str()
            ),
        ),
        Some(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Some(Ok(entries)) => {
            let (entries, truncated) = within_bytes(entries, JOURNAL_MAX_BYTES);
            (
                StatusCode::OK,
                axum::Json(json!({ "entries": entries, "truncated": truncated })),
            )
                .into_response()
        }
    }
}

/// The first entries whose JSON fits in `max` bytes, and whether any was left out.
fn within_bytes(entries: Vec<JournalEntry>, max: usize) -> (Vec<JournalEntry>, bool) {
    let mut used = 0;
    let total = entries.len();
    let kept: Vec<JournalEntry> = entries
        .into_iter()
        .take_while(|e| {
            used += serde_json::to_vec(e).map(|v| v.len()).unwrap_or(usize::MAX / 2);
            used <= max
        })
        .collect();
    let truncated = kept.len() < total;
    (kept, truncated)
}

async fn handoff(
    State(state): State<Arc<ApiState>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<HandoffQuery>,
) -> Response {
    let key = ActorKey::new(namespace, name);
    match state.host.take_handoff(&key, q.epoch) {
        Some(h) => {
            let mut resp = (StatusCode::OK, axum::Json(h.state)).into_response();
            if let Some(micros) = h
                .stopped_at
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_micros().to_string())
                .and_then(|v| header::HeaderValue::from_str(&v).ok())
            {
                resp.headers_mut().insert(STOPPED_AT, micros);
            }
            resp
        }
        None => error(
            StatusCode::NOT_FOUND,
            format!("no state of {key} handed over for epoch {}", q.epoch),
        ),
    }
}
