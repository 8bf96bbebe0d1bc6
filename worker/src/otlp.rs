//! Optional export of spans over OTLP/HTTP (protobuf), with the `opentelemetry` crates.
//!
//! Off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the
//! standard variables, read as every OpenTelemetry SDK reads them: `…_TRACES_ENDPOINT` is used
//! as it is, `…_ENDPOINT` gets `/v1/traces` appended, `OTEL_EXPORTER_OTLP_HEADERS` adds headers
//! such as a collector's token, `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name the
//! service). An `https://` endpoint is reached over TLS (rustls with the ring provider, as the
//! rest of the worker) and verified against the CA file `OTEL_EXPORTER_OTLP_CERTIFICATE` (or
//! `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`) names, or against the system's roots without one,
//! presenting the client certificate of `OTEL_EXPORTER_OTLP_(TRACES_)CLIENT_CERTIFICATE` and
//! `…_CLIENT_KEY` to a collector that asks for one: see [`tls`]. Settings that cannot work stop the worker at start with the reason.
//!
//! What is exported follows the sampler ([`crate::trace::Sampling`], `OTEL_TRACES_SAMPLER`):
//! by default the caller's sampled flag decides for a message that comes with a `traceparent`,
//! and a message without one starts a sampled trace of its own (`parentbased_always_on`).
//!
//! Each exported span has the ids the worker logs and passes on: the SDK draws them with the
//! worker's generator ([`crate::trace::new_trace_id`]), and [`crate::trace::within`] makes the
//! span's id the one of the `traceparent` this worker sends onward.
//! Spans leave in batches from the SDK's own thread, so a slow or absent collector never holds a
//! message up; a full queue drops spans (the SDK's bound, 2,048 by default). A failed export is
//! logged as a warning, at most once a minute.

mod tls;

use std::{
    fmt,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use opentelemetry::{
    Context, KeyValue,
    trace::{
        SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
        TracerProvider,
    },
};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{IdGenerator, Sampler, SdkTracer, SdkTracerProvider, Span},
};

use crate::trace::{Hop, Sampling, TraceParent};

/// The tracer spans are exported with, once [`init`] turned export on.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// A collector's answer is read up to this size (an OTLP answer is a few bytes).
const MAX_ANSWER: usize = 64 * 1024;
/// One export request may take this long (the SDK's batch then goes on with the next).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// A failed export is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE";
const CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
/// The client certificate and key files (mutual TLS), the traces pair before the general one.
const CLIENT_CREDENTIALS: [(&str, &str); 2] = [
    (
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    ),
    (
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    ),
];

/// A variable's value, trimmed; empty counts as unset (as the specification says).
fn var(env: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Whether `env` turns export on (a traces or general endpoint, not empty).
#[cfg(test)]
pub fn wanted(env: impl Fn(&str) -> Option<String>) -> bool {
    var(&env, TRACES_ENDPOINT).is_some() || var(&env, ENDPOINT).is_some()
}

/// Where spans go and how, read from the standard variables.
pub struct Settings {
    /// The URL spans are posted to (`/v1/traces` already appended to a general endpoint).
    pub endpoint: String,
    /// For an `https://` endpoint: the TLS client settings and where the trusted roots come from.
    tls: Option<tls::Tls>,
    /// What the settings leave out (a CA for a plain endpoint, client certificates), to log.
    pub warnings: Vec<String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &troupe_net::redact_url(&self.endpoint))
            .field("trusting", &self.trusting())
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl Settings {
    /// Reads the settings from `env`: `Ok(None)` when export is off. The error says which
    /// variable cannot work (an endpoint that is not http or https, a CA file that cannot be
    /// read or holds no certificate, no system roots for an https endpoint).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Option<Settings>, String> {
        let (endpoint, from) = match (var(&env, TRACES_ENDPOINT), var(&env, ENDPOINT)) {
            (Some(e), _) => (e, TRACES_ENDPOINT),
            (None, Some(e)) => {
                let slash = if e.ends_with('/') { "" } else { "/" };
                (format!("{e}{slash}v1/traces"), ENDPOINT)
            }
            (None, None) => return Ok(None),
        };
        let shown = troupe_net::redact_url(&endpoint);
        let url = reqwest::Url::parse(&endpoint).map_err(|e| format!("{from}: {shown} is not a URL: {e}"))?;
        let mut warnings = Vec::new();
        let ca = [TRACES_CERTIFICATE, CERTIFICATE]
            .into_iter()
            .find_map(|name| var(&env, name).map(|path| (name, path)));
        let client = client_files(&env)?;
        let tls = match url.scheme() {
            "https" => {
                let roots = match &ca {
                    Some((name, path)) => tls::roots_from_file(name, path)?,
                    None => tls::system_roots()?,
                };
                let client = client
                    .map(|(var, cert, key)| tls::client_identity(var, &cert, &key))
                    .transpose()?;
                Some(tls::Tls::new(roots, client)?)
            }
            "http" => {
                for name in ca.iter().map(|(name, _)| *name).chain(client.iter().map(|c| c.0)) {
                    warnings.push(format!(
                        "{name} is set but the endpoint {shown} is plain http://: it is not used \
                         and spans travel unencrypted"
                    ));
                }
                None
            }
            other => {
                return Err(format!(
                    "{from}: {shown}: the scheme must be http or https, not {other:?} (OTLP/HTTP; \
                     gRPC is not supported)"
                ));
            }
        };
        Ok(Some(Settings {
            endpoint,
            tls,
            warnings,
        }))
    }

    /// Where the trusted roots come from, for the start-up log (None for plain http).
    pub fn trusting(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.roots_from())
    }
}

/// The client certificate and key files the env names (the traces pair first): both of a
/// pair, or neither. Returns the certificate's variable and the two paths.
fn client_files(
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<(&'static str, String, String)>, String> {
    for (cert_var, key_var) in CLIENT_CREDENTIALS {
        match (var(env, cert_var), var(env, key_var)) {
            (Some(cert), Some(key)) => return Ok(Some((cert_var, cert, key))),
            (Some(_), None) => return Err(format!("{cert_var} is set without {key_var}: give both")),
            (None, Some(_)) => return Err(format!("{key_var} is set without {cert_var}: give both")),
            (None, None) => {}
        }
    }
    Ok(None)
}

/// Reads the sampler and the export settings from the process's env and turns export on when
/// they ask for it (see the module), describing this worker with `attributes` (pod, namespace,
/// pool). The sampler applies whether or not spans are exported: it sets the sampled flag of
/// the traces this worker starts and passes on. Returns the provider, to flush at shutdown;
/// `Ok(None)` when export is off. Call once, inside the Tokio runtime (exports run on it).
pub fn init(attributes: Vec<KeyValue>) -> anyhow::Result<Option<SdkTracerProvider>> {
    let env = |name: &str| std::env::var(name).ok();
    let (sampling, warning) = Sampling::from_env(env);
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
    crate::trace::set_sampling(sampling);
    let Some(settings) = Settings::from_env(env).map_err(anyhow::Error::msg)? else {
        return Ok(None);
    };
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let provider = provider(&settings, sampling, attributes, tokio::runtime::Handle::current())?;
    let _ = TRACER.set(provider.tracer("troupe-worker"));
    tracing::info!(
        endpoint = %troupe_net::redact_url(&settings.endpoint),
        sampler = %sampling,
        trusting = settings.trusting().unwrap_or("- (plain http)"),
        "exporting spans over OTLP/HTTP"
    );
    Ok(Some(provider))
}

/// A provider that exports to `settings`' endpoint over HTTP(S) on `runtime`, sampling as
/// `sampling` says and drawing ids with the worker's generator.
pub fn provider(
    settings: &Settings,
    sampling: Sampling,
    attributes: Vec<KeyValue>,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(settings.endpoint.clone())
        .with_http_client(TokioHttp::new(settings, runtime)?)
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    let mut resource = Resource::builder().with_attributes(attributes);
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name("troupe-worker");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .with_sampler(sdk_sampler(sampling))
        .with_id_generator(Ids)
        .build())
}

/// The SDK's sampler for `sampling`: the same decisions as [`Sampling::sampled`].
fn sdk_sampler(sampling: Sampling) -> Sampler {
    let root = match sampling.root {
        crate::trace::Sampler::AlwaysOn => Sampler::AlwaysOn,
        crate::trace::Sampler::AlwaysOff => Sampler::AlwaysOff,
        crate::trace::Sampler::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
    };
    match sampling.parent_based {
        true => Sampler::ParentBased(Box::new(root)),
        false => root,
    }
}

/// The SDK draws ids with the worker's generator: random, never zero.
#[derive(Debug)]
struct Ids;

impl IdGenerator for Ids {
    fn new_trace_id(&self) -> TraceId {
        crate::trace::new_trace_id().into()
    }

    fn new_span_id(&self) -> SpanId {
        crate::trace::new_span_id().into()
    }
}

/// Flushes what is still queued and stops export, waiting at most `timeout` (off the runtime:
/// the SDK's shutdown blocks).
pub async fn shutdown(provider: SdkTracerProvider, timeout: Duration) {
    let done = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(timeout)).await;
    if let Ok(Err(e)) = done {
        tracing::warn!(error = %e, "flushing the last spans to the OTLP collector failed");
    }
}

/// Starts the exported span of one hop, a child of `parent` (the span that sent the message)
/// or, without one, the root of a new trace; it ends when dropped. `None` when export is off.
pub fn start(parent: Option<&TraceParent>, hop: Hop, actor: &(dyn fmt::Display + Sync)) -> Option<Span> {
    TRACER.get().map(|tracer| start_with(tracer, parent, hop, actor))
}

fn start_with(
    tracer: &SdkTracer,
    parent: Option<&TraceParent>,
    hop: Hop,
    actor: &(dyn fmt::Display + Sync),
) -> Span {
    let cx = match parent {
        Some(parent) => Context::new().with_remote_span_context(SpanContext::new(
            parent.trace_id.into(),
            parent.parent_id.into(),
            TraceFlags::new(parent.flags),
            true,
            TraceState::default(),
        )),
        None => Context::new(),
    };
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
    tracer.build_with_context(builder, &cx)
}

/// The trace an exported span is: its trace and span ids as the SDK gave them, and its sampled
/// flag as the SDK's sampler decided (the parent's other flags kept). None when the SDK gave it
/// no ids (a span started after the provider was shut down).
pub fn trace_of(span: &Span, parent: Option<TraceParent>) -> Option<TraceParent> {
    let cx = opentelemetry::trace::Span::span_context(span);
    cx.is_valid().then(|| {
        TraceParent::hop(
            parent,
            u128::from_be_bytes(cx.trace_id().to_bytes()),
            u64::from_be_bytes(cx.span_id().to_bytes()),
            cx.is_sampled(),
        )
    })
}

/// The OTLP exporter's HTTP client: the worker's `reqwest` on its Tokio runtime (with rustls for
/// an https endpoint). The SDK exports from a thread of its own with no runtime, so each request
/// is spawned onto the worker's.
#[derive(Debug)]
struct TokioHttp {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    /// Where the trusted roots come from, for the reason of a refused handshake.
    roots_from: Option<Arc<str>>,
    /// When a failed export was last logged.
    warned: Mutex<Option<Instant>>,
}

impl TokioHttp {
    fn new(settings: &Settings, runtime: tokio::runtime::Handle) -> anyhow::Result<TokioHttp> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(EXPORT_TIMEOUT);
        if let Some(tls) = &settings.tls {
            builder = builder.use_preconfigured_tls(tls.config()).https_only(true);
        }
        Ok(TokioHttp {
            client: builder.build()?,
            runtime,
            roots_from: settings.tls.as_ref().map(|t| t.roots_from().into()),
            warned: Mutex::default(),
        })
    }

    /// Logs a failed export, unless one was logged in the last minute.
    fn warn(&self, why: &str) {
        let mut last = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        tracing::warn!(error = %why, "exporting spans to the OTLP collector failed: these spans are lost (said at most once a minute)");
    }
}

#[async_trait::async_trait]
impl HttpClient for TokioHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let roots_from = self.roots_from.clone();
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let host = parts.uri.host().unwrap_or_default().to_string();
            let answer = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| tls::describe(&e, &host, roots_from.as_deref()))?;
            let mut builder = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                builder = builder.header(name, value);
            }
            let body = troupe_net::read_response_body(answer, MAX_ANSWER)
                .await
                .map_err(|e| match e {
                    troupe_net::BodyError::TooLarge { .. } => {
                        "the collector's answer is over 64 KiB".to_string()
                    }
                    troupe_net::BodyError::Failed(why) => why,
                })?;
            builder.body(body).map_err(|e| e.to_string())
        });
        match sent.await {
            Ok(Ok(answer)) => {
                // The exporter fails the batch on this; the body is not logged (a collector
                // may echo credentials back).
                if !answer.status().is_success() {
                    self.warn(&format!("the collector answered HTTP {}", answer.status()));
                }
                Ok(answer)
            }
            Ok(Err(why)) => {
                self.warn(&why);
                Err(why.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;
