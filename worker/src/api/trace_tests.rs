//! Traces across actors on real sockets: a tell that comes with a `traceparent` is handled in
//! that trace, and so is the tell its actor sends on with `ctx.tell` to an actor of another
//! worker (the forward carries the header); a tell without one starts a trace of its own, the
//! same way; every answer names its trace in `traceresponse`.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use super::{
    socket_tests::{TOKEN, serve},
    *,
};
use crate::{
    behavior::{ActorError, Behavior, Context, Registry},
    host::HostConfig,
    metrics::Metrics,
    trace::TraceParent,
};

const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

type Seen = Arc<Mutex<Vec<(String, Option<TraceParent>)>>>;

/// Records the trace each message is handled in; `{"tell": "x"}` tells actor x `1`.
struct Recorder(Seen);

#[async_trait::async_trait]
impl Behavior for Recorder {
    async fn handle(&mut self, ctx: &Context, msg: Value) -> Result<Value, ActorError> {
        self.0
            .lock()
            .unwrap()
            .push((ctx.name.clone(), crate::trace::current()));
        if let Some(next) = msg["tell"].as_str() {
            ctx.tell(next, json!(1)).await?;
        }
        Ok(Value::Null)
    }
}

/// A worker hosting `actor` (a recorder) on a free port; other actors are at `routes`.
async fn worker(actor: &str, routes: HashMap<ActorKey, String>, seen: &Seen) -> String {
    let mut registry = Registry::new();
    let s = seen.clone();
    registry.register("recorder", move |_| Ok(Box::new(Recorder(s.clone()))));
    let host = Host::start(HostConfig::default(), registry, Metrics::new())
        .await
        .unwrap();
    let spec = serde_json::from_value(json!({"pool": "p", "behavior": "recorder"})).unwrap();
    host.upsert(ActorKey::new("ns", actor), spec, Some(1)).await;
    let forwarder = Arc::new(Forwarder::with_static_routes(Some(TOKEN.into()), routes));
    host.set_router(forwarder.clone());
    serve(host, forwarder).await.to_string()
}

/// Tells `actor` at `addr`; returns the status and the answer's `traceresponse`.
async fn tell(addr: &str, actor: &str, body: Value, traceparent: Option<&str>) -> (u16, Option<String>) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/v1/namespaces/ns/actors/{actor}/tell"))
        .bearer_auth(TOKEN)
        .json(&body);
    if let Some(t) = traceparent {
        req = req.header(crate::trace::HEADER, t);
    }
    let answer = req.send().await.unwrap();
    let trace = answer
        .headers()
        .get(crate::trace::RESPONSE_HEADER)
        .map(|v| v.to_str().unwrap().to_string());
    (answer.status().as_u16(), trace)
}

async fn seen_by(seen: &Seen, n: usize) -> Vec<(String, Option<TraceParent>)> {
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen.lock().unwrap().clone()
}

/// The trace each recorded message was handled in; panics on an untraced one.
fn traces(seen: &[(String, Option<TraceParent>)]) -> Vec<TraceParent> {
    seen.iter()
        .map(|(n, t)| t.unwrap_or_else(|| panic!("{n} untraced: {seen:?}")))
        .collect()
}

#[tokio::test]
async fn a_traced_tell_and_the_tell_its_actor_sends_to_another_worker_are_handled_in_its_trace() {
    let seen: Seen = Default::default();
    let b = worker("b", HashMap::new(), &seen).await;
    let a = worker("a", HashMap::from([(ActorKey::new("ns", "b"), b)]), &seen).await;

    let (status, answered) = tell(&a, "a", json!({"tell": "b"}), Some(INCOMING)).await;
    assert_eq!(status, 202);
    let seen = seen_by(&seen, 2).await;
    let incoming = TraceParent::parse(INCOMING).unwrap();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b"], "{seen:?}");
    let spans = traces(&seen);
    for t in &spans {
        assert_eq!(
            t.trace_id, incoming.trace_id,
            "one trace across both workers: {seen:?}"
        );
        assert_eq!(t.flags, incoming.flags);
    }
    assert!(
        spans[0].parent_id != incoming.parent_id && spans[1].parent_id != spans[0].parent_id,
        "each hop is a span of its own: {seen:?}"
    );
    // The answer names the caller's trace and the span of the worker that took the request.
    let answered = TraceParent::parse(&answered.expect("a traceresponse")).unwrap();
    assert_eq!(
        (answered.trace_id, answered.flags),
        (incoming.trace_id, incoming.flags)
    );
    assert_ne!(
        answered.parent_id, incoming.parent_id,
        "the worker's span, not the caller's"
    );
}

#[tokio::test]
async fn a_tell_without_a_valid_traceparent_starts_a_trace_that_the_actors_it_tells_share() {
    let seen: Seen = Default::default();
    let b = worker("b", HashMap::new(), &seen).await;
    let a = worker("a", HashMap::from([(ActorKey::new("ns", "b"), b)]), &seen).await;

    let (status, first) = tell(&a, "a", json!({"tell": "b"}), None).await;
    assert_eq!(status, 202);
    let recorded = seen_by(&seen, 2).await;
    let spans = traces(&recorded);
    let first = TraceParent::parse(&first.expect("a traceresponse")).expect("a valid traceresponse");
    assert_ne!(first.trace_id, 0);
    assert!(
        spans.iter().all(|t| t.trace_id == first.trace_id),
        "a's message and the tell it sent to b on another worker share the trace the answer \
         names: {first:?} {recorded:?}"
    );
    assert!(
        first.sampled() && spans.iter().all(TraceParent::sampled),
        "sampled: parentbased_always_on, OpenTelemetry's default"
    );
    assert!(spans[0].parent_id != first.parent_id && spans[1].parent_id != spans[0].parent_id);

    // An invalid header is no header: a new trace again, another one.
    let (status, second) = tell(&a, "a", json!(1), Some("00-not-a-trace")).await;
    assert_eq!(status, 202);
    let second = TraceParent::parse(&second.expect("a traceresponse")).unwrap();
    assert_ne!(
        second.trace_id, first.trace_id,
        "each untraced tell starts its own"
    );
    let recorded = seen_by(&seen, 3).await;
    assert_eq!(traces(&recorded)[2].trace_id, second.trace_id);
}

#[tokio::test]
async fn an_ask_answers_with_the_trace_it_was_handled_in_and_so_does_a_refusal() {
    let seen: Seen = Default::default();
    let a = worker("a", HashMap::new(), &seen).await;
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("http://{a}/v1/namespaces/ns/actors/a/ask"))
        .bearer_auth(TOKEN)
        .json(&json!(1))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let named = answer.headers()[crate::trace::RESPONSE_HEADER].to_str().unwrap();
    let named = TraceParent::parse(named).unwrap();
    let recorded = seen_by(&seen, 1).await;
    assert_eq!(traces(&recorded)[0].trace_id, named.trace_id);

    // An actor that is not here: the refusal names its trace too (the caller can look it up).
    let (status, trace) = tell(&a, "nobody", json!(1), Some(INCOMING)).await;
    assert!(status >= 400, "{status}");
    let trace = TraceParent::parse(&trace.expect("a traceresponse on a refusal")).unwrap();
    assert_eq!(trace.trace_id, TraceParent::parse(INCOMING).unwrap().trace_id);
}
