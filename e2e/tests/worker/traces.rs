//! Traces exported over OTLP: workers started with `OTEL_EXPORTER_OTLP_ENDPOINT` send the spans
//! of traced messages to a collector — here a receiver in the test that decodes them with the
//! upstream protobuf types — and the spans of one tell link up across two workers.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{Router, body::Bytes, extract::State, routing::post as route_post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{KeyValue, any_value::Value as Any},
};
use prost::Message;

use super::*;

/// One span as received: its ids in hex, its name, and the pod that sent it.
#[derive(Clone, Debug)]
struct Received {
    trace_id: String,
    span_id: String,
    parent_id: String,
    name: String,
    pod: String,
    actor: String,
}

type Spans = Arc<Mutex<Vec<Received>>>;

fn text(attributes: &[KeyValue], key: &str) -> String {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Any::StringValue(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The collector's `/v1/traces` (OTLP/HTTP, protobuf): keeps every span it is sent.
async fn collect(State(spans): State<Spans>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
    let mut kept = spans.lock().unwrap();
    for resource in request.resource_spans {
        let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
        let pod = text(&attributes, "k8s.pod.name");
        for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
            kept.push(Received {
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_id: hex(&span.parent_span_id),
                name: span.name.clone(),
                pod: pod.clone(),
                actor: text(&span.attributes, "troupe.actor"),
            });
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

/// Starts the receiver on a free local port; returns its endpoint and what it received.
async fn collector() -> (String, Spans) {
    let spans = Spans::default();
    let app = Router::new()
        .route("/v1/traces", route_post(collect))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (endpoint, spans)
}

const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const NOT_SAMPLED: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";

async fn tell_traced(addr: &str, path: &str, traceparent: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("1");
    if let Some(t) = traceparent {
        req = req.header("traceparent", t);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_traced_tell_forwarded_between_workers_is_exported_as_linked_spans_over_otlp() {
    let env = TestEnv::new("worker-otlp").await;
    let (endpoint, spans) = collector().await;
    let otel = format!(
        "            - {{name: OTEL_EXPORTER_OTLP_ENDPOINT, value: \"{endpoint}\"}}\n            - {{name: OTEL_BSP_SCHEDULE_DELAY, value: \"100\"}}\n"
    );
    let workers = start_workers_with(&env, 2, &otel).await;
    let (a, _) = &workers[0];
    let (b, b_addr) = &workers[1];
    assert!(env.apply(&actor("traced", a, "counter", "")).0);
    phase_is(&env, "traced", "Running").await;
    let tell = path(&env, "traced", "tell");
    // Through worker b, which forwards to a: untraced, traced but not sampled, then sampled.
    assert_eq!(tell_traced(b_addr, &tell, None).await, 202);
    assert_eq!(tell_traced(b_addr, &tell, Some(NOT_SAMPLED)).await, 202);
    assert_eq!(tell_traced(b_addr, &tell, Some(SAMPLED)).await, 202);

    let trace_id = &SAMPLED[3..35];
    let by_name = eventually("the sampled tell's three spans", WAIT, || async {
        let got: Vec<Received> = spans.lock().unwrap().clone();
        let ours: BTreeMap<(String, String), Received> = got
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .map(|s| ((s.pod.clone(), s.name.clone()), s))
            .collect();
        (ours.len() >= 3).then_some(ours)
    })
    .await;
    let dump = format!("{by_name:#?}");
    let entry = &by_name[&(b.clone(), "request".to_string())];
    let forwarded = &by_name[&(a.clone(), "request".to_string())];
    let handled = &by_name[&(a.clone(), "message".to_string())];
    assert_eq!(
        entry.parent_id,
        &SAMPLED[36..52],
        "b's span is a child of the caller's: {dump}"
    );
    assert_eq!(
        forwarded.parent_id, entry.span_id,
        "a's request is a child of b's: {dump}"
    );
    assert_eq!(
        handled.parent_id, forwarded.span_id,
        "the message is a child of a's request: {dump}"
    );
    let key = format!("{}/traced", env.namespace);
    assert_eq!((&entry.actor, &handled.actor), (&key, &key), "{dump}");
    assert_eq!(by_name.len(), 3, "one span per hop: {dump}");

    // The untraced tell started a trace of its own at b (root traces are sampled as the
    // OpenTelemetry default, parentbased_always_on, says): the same three hops, b's first with
    // no parent. The unsampled one is not exported.
    let own = eventually("the untraced tell's own trace", WAIT, || async {
        let got: Vec<Received> = spans.lock().unwrap().clone();
        let own: Vec<Received> = got
            .into_iter()
            .filter(|s| s.trace_id != trace_id && s.actor == key)
            .collect();
        (own.len() >= 3).then_some(own)
    })
    .await;
    let dump = format!("{own:#?}");
    assert_eq!(own.len(), 3, "one span per hop: {dump}");
    assert!(own.iter().all(|s| s.trace_id == own[0].trace_id), "{dump}");
    let root = own
        .iter()
        .find(|s| s.pod == *b && s.name == "request")
        .unwrap_or_else(|| panic!("b's request span: {dump}"));
    assert_eq!(root.parent_id, "", "b's span is the root: {dump}");
    let all: Vec<Received> = spans.lock().unwrap().clone();
    assert!(
        !all.iter().any(|s| s.trace_id == NOT_SAMPLED[3..35]),
        "the unsampled tell is not exported: {all:#?}"
    );
}
