//! Traces across actors on real sockets: a tell that comes with a `traceparent` is handled in
//! that trace, and so is the tell its actor sends on with `ctx.tell` to an actor of another
//! worker (the forward carries the header).

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

async fn tell(addr: &str, actor: &str, body: Value, traceparent: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/v1/namespaces/ns/actors/{actor}/tell"))
        .bearer_auth(TOKEN)
        .json(&body);
    if let Some(t) = traceparent {
        req = req.header(crate::trace::HEADER, t);
    }
    req.send().await.unwrap().status().as_u16()
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

#[tokio::test]
async fn a_traced_tell_and_the_tell_its_actor_sends_to_another_worker_are_handled_in_its_trace() {
    let seen: Seen = Default::default();
    let b = worker("b", HashMap::new(), &seen).await;
    let a = worker("a", HashMap::from([(ActorKey::new("ns", "b"), b)]), &seen).await;

    assert_eq!(tell(&a, "a", json!({"tell": "b"}), Some(INCOMING)).await, 202);
    let seen = seen_by(&seen, 2).await;
    let incoming = TraceParent::parse(INCOMING).unwrap();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b"], "{seen:?}");
    let spans: Vec<TraceParent> = seen
        .iter()
        .map(|(n, t)| t.unwrap_or_else(|| panic!("{n} untraced")))
        .collect();
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
}

#[tokio::test]
async fn a_tell_without_a_valid_traceparent_starts_no_trace() {
    let seen: Seen = Default::default();
    let a = worker("a", HashMap::new(), &seen).await;
    assert_eq!(tell(&a, "a", json!(1), None).await, 202);
    assert_eq!(tell(&a, "a", json!(1), Some("00-not-a-trace")).await, 202);
    let seen = seen_by(&seen, 2).await;
    assert_eq!(seen, [("a".into(), None), ("a".into(), None)]);
}
