//! Optional export of traced spans over OTLP/HTTP (protobuf), with the `opentelemetry` crates.
//!
//! Off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the
//! standard variables, read as every OpenTelemetry SDK reads them: `…_ENDPOINT` gets
//! `/v1/traces` appended, `OTEL_EXPORTER_OTLP_HEADERS` adds headers such as a collector's token,
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name the service). Only messages that come
//! with a `traceparent` are exported ([`crate::trace`]), and only when the caller sampled them
//! (flag bit 0): the parent decides, as OpenTelemetry's default `ParentBased` sampler does.
//!
//! Each exported span has the ids the worker logs and passes on: the span id is the SDK's, and
//! [`crate::trace::within`] makes it the id of the `traceparent` this worker sends onward.
//! Spans leave in batches from the SDK's own thread, so a slow or absent collector never holds a
//! message up; a full queue drops spans (the SDK's bound, 2,048 by default).

use std::{sync::OnceLock, time::Duration};

use opentelemetry::{
    Context, KeyValue,
    trace::{SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceState, Tracer, TracerProvider},
};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{SdkTracer, SdkTracerProvider, Span},
};

use crate::trace::{Hop, TraceParent};

/// The tracer spans are exported with, once [`init`] turned export on.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// A collector's answer is read up to this size (an OTLP answer is a few bytes).
const MAX_ANSWER: usize = 64 * 1024;
/// One export request may take this long (the SDK's batch then goes on with the next).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `env` turns export on (a traces or general endpoint, not empty).
pub fn wanted(env: impl Fn(&str) -> Option<String>) -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|name| env(name).is_some_and(|v| !v.trim().is_empty()))
}

/// Turns export on when the env asks for it (see the module), describing this worker with
/// `attributes` (pod, namespace, pool). Returns the provider, to flush at shutdown; `Ok(None)`
/// when export is off. Call once, inside the Tokio runtime (exports run on it).
pub fn init(attributes: Vec<KeyValue>) -> anyhow::Result<Option<SdkTracerProvider>> {
    if !wanted(|name| std::env::var(name).ok()) {
        return Ok(None);
    }
    let client = TokioHttp {
        client: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(EXPORT_TIMEOUT)
            .build()?,
        runtime: tokio::runtime::Handle::current(),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    let mut resource = Resource::builder().with_attributes(attributes);
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name("troupe-worker");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let _ = TRACER.set(provider.tracer("troupe-worker"));
    Ok(Some(provider))
}

/// Flushes what is still queued and stops export, waiting at most `timeout` (off the runtime:
/// the SDK's shutdown blocks).
pub async fn shutdown(provider: SdkTracerProvider, timeout: Duration) {
    let done = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(timeout)).await;
    if let Ok(Err(e)) = done {
        tracing::warn!(error = %e, "flushing the last spans to the OTLP collector failed");
    }
}

/// Starts the exported span of one hop, a child of `parent` (the span that sent the message);
/// it ends when dropped. `None` when export is off.
pub fn start(parent: &TraceParent, hop: Hop, actor: &str) -> Option<Span> {
    let tracer = TRACER.get()?;
    let remote = SpanContext::new(
        parent.trace_id.into(),
        parent.parent_id.into(),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    let cx = Context::new().with_remote_span_context(remote);
    let mut attributes = vec![KeyValue::new("troupe.actor", actor.to_string())];
    let kind = match hop {
        Hop::Request { verb } => {
            attributes.push(KeyValue::new("troupe.verb", verb));
            SpanKind::Server
        }
        Hop::Message => SpanKind::Consumer,
    };
    let builder = tracer
        .span_builder(hop.name())
        .with_kind(kind)
        .with_attributes(attributes);
    Some(tracer.build_with_context(builder, &cx))
}

/// The span id the SDK gave an exported span (the id this worker passes on).
pub fn span_id(span: &Span) -> SpanId {
    opentelemetry::trace::Span::span_context(span).span_id()
}

/// The OTLP exporter's HTTP client: the worker's `reqwest` on its Tokio runtime. The SDK exports
/// from a thread of its own with no runtime, so each request is spawned onto the worker's.
#[derive(Debug)]
struct TokioHttp {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for TokioHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let mut answer = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut builder = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                builder = builder.header(name, value);
            }
            let mut body = Vec::new();
            while let Some(chunk) = answer.chunk().await? {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err::<_, HttpError>("the collector's answer is over 64 KiB".into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(builder.body(Bytes::from(body))?)
        });
        sent.await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_is_off_unless_an_endpoint_is_set() {
        let env = |set: &'static [(&'static str, &'static str)]| {
            move |name: &str| set.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        assert!(!wanted(env(&[])));
        assert!(!wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(!wanted(env(&[("OTEL_SERVICE_NAME", "w")])));
        assert!(wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])));
        assert!(wanted(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces"
        )])));
    }

    #[test]
    fn without_export_no_span_is_started() {
        let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert!(start(&parent, Hop::Message, "ns/a").is_none());
    }
}
