//! The export settings (endpoint, CA, warnings), the sampler handed to the SDK, and, on real
//! sockets, export to a collector that serves TLS: a collector in the test (on 127.41.0.x, a
//! free port) with certificates made for the test by the `openssl` CLI (CI installs it).

use std::path::Path;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample};
use prost::Message;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use troupe_proptest::certs::{CertSpec, Certs};

use super::*;

fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
}

fn settings(vars: &[(&str, &str)]) -> Settings {
    Settings::from_env(env_of(vars))
        .unwrap_or_else(|e| panic!("{vars:?}: {e}"))
        .expect("export on")
}

fn refused(vars: &[(&str, &str)]) -> String {
    match Settings::from_env(env_of(vars)) {
        Ok(s) => panic!("{vars:?} was accepted: {s:?}"),
        Err(e) => e,
    }
}

#[test]
fn export_is_off_unless_an_endpoint_is_set() {
    assert!(!wanted(env_of(&[])));
    assert!(!wanted(env_of(&[(ENDPOINT, " ")])));
    assert!(!wanted(env_of(&[("OTEL_SERVICE_NAME", "w")])));
    assert!(wanted(env_of(&[(ENDPOINT, "http://c:4318")])));
    assert!(wanted(env_of(&[(TRACES_ENDPOINT, "http://c:4318/v1/traces")])));
    assert!(
        Settings::from_env(env_of(&[(CERTIFICATE, "/nowhere")]))
            .unwrap()
            .is_none()
    );
}

#[test]
fn without_export_no_span_is_started() {
    let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    assert!(start(Some(&parent), Hop::Message, &"ns/a").is_none());
    assert!(start(None, Hop::Request { verb: "tell" }, &"ns/a").is_none());
}

#[test]
fn the_traces_endpoint_is_used_as_it_is_and_the_general_one_gets_v1_traces() {
    for (general, expected) in [
        ("http://c:4318", "http://c:4318/v1/traces"),
        ("http://c:4318/", "http://c:4318/v1/traces"),
        (" http://c:4318/prefix ", "http://c:4318/prefix/v1/traces"),
    ] {
        let s = settings(&[(ENDPOINT, general)]);
        assert_eq!(s.endpoint, expected);
        assert_eq!(s.trusting(), None, "plain http: no TLS");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }
    let s = settings(&[
        (TRACES_ENDPOINT, "http://t:4318/custom"),
        (ENDPOINT, "http://c:4318"),
    ]);
    assert_eq!(s.endpoint, "http://t:4318/custom");
}

#[test]
fn an_endpoint_that_is_not_an_http_or_https_url_stops_the_worker_with_the_reason() {
    for (endpoint, why) in [
        ("grpc://c:4317", "the scheme must be http or https"),
        ("otel-collector:4318", "the scheme must be http or https"),
        ("just a name", "is not a URL"),
        ("https://:4318", "is not a URL"),
    ] {
        let e = refused(&[(ENDPOINT, endpoint)]);
        assert!(e.contains(why) && e.contains(ENDPOINT), "{endpoint}: {e}");
    }
    // Credentials in the URL are not repeated.
    let e = refused(&[(TRACES_ENDPOINT, "ftp://user:secret@c:21/v1/traces")]);
    assert!(e.contains(TRACES_ENDPOINT) && !e.contains("secret"), "{e}");
}

/// Certificates made for one test: a CA, a server certificate it signed (for 127.41.0.1,
/// 127.41.0.2 and localhost, not 127.41.0.3), and a second CA that signed nothing.
fn certs() -> Certs {
    Certs::make(&CertSpec {
        server_names: &["localhost", "127.41.0.1", "127.41.0.2"],
        ..CertSpec::default()
    })
}

fn text(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_ca_file_that_cannot_be_used_stops_the_worker_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let https = (ENDPOINT, "https://collector:4318");
    let missing = dir.path().join("missing.crt");
    let e = refused(&[https, (CERTIFICATE, text(&missing))]);
    assert!(
        e.contains(CERTIFICATE) && e.contains(text(&missing)) && e.contains("reading the CA file"),
        "{e}"
    );

    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let e = refused(&[https, (TRACES_CERTIFICATE, text(&garbage))]);
    assert!(
        e.contains(TRACES_CERTIFICATE) && e.contains("holds no certificate"),
        "{e}"
    );

    let not_x509 = dir.path().join("not-x509.crt");
    std::fs::write(
        &not_x509,
        "-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = refused(&[https, (CERTIFICATE, text(&not_x509))]);
    assert!(e.contains("cannot be read as X.509"), "{e}");
}

#[test]
fn the_traces_certificate_is_preferred_and_unused_settings_are_said() {
    let certs = certs();
    let s = settings(&[
        (ENDPOINT, "https://collector:4318"),
        (TRACES_CERTIFICATE, text(&certs.ca)),
        (CERTIFICATE, "/the/general/one/is/not/read"),
    ]);
    let trusting = s.trusting().expect("TLS");
    assert!(trusting.contains(TRACES_CERTIFICATE), "{trusting}");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);

    let s = settings(&[
        (ENDPOINT, "http://collector:4318"),
        (CERTIFICATE, text(&certs.ca)),
    ]);
    assert_eq!(s.trusting(), None);
    assert!(
        s.warnings.len() == 1 && s.warnings[0].contains("not used"),
        "{:?}",
        s.warnings
    );

    let s = settings(&[
        (ENDPOINT, "http://collector:4318"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", text(&certs.client_cert)),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", text(&certs.client_key)),
    ]);
    assert!(
        s.warnings.len() == 1
            && s.warnings[0].starts_with("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE is set")
            && s.warnings[0].contains("not used"),
        "{:?}",
        s.warnings
    );
}

#[test]
fn a_client_certificate_needs_its_key_and_the_key_must_be_its_own() {
    let certs = certs();
    let https = (ENDPOINT, "https://collector:4318");
    let ca = (CERTIFICATE, text(&certs.ca));
    let e = refused(&[
        https,
        ca,
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", text(&certs.client_key)),
    ]);
    assert!(
        e.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY is set without OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        "{e}"
    );
    let e = refused(&[
        https,
        ca,
        (
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
            text(&certs.client_cert),
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", text(&certs.stranger_key)),
    ]);
    assert!(
        e.contains("the client certificate OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE")
            && e.contains("key"),
        "{e}"
    );
    let e = refused(&[
        https,
        ca,
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", text(&certs.client_cert)),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/no/such/client.key"),
    ]);
    assert!(e.contains("reading the client key /no/such/client.key"), "{e}");
}

#[test]
fn the_sdk_is_handed_a_sampler_that_decides_as_the_worker_does() {
    use crate::trace::Sampler::*;
    let samplings = [
        Sampling::default(),
        Sampling {
            root: AlwaysOff,
            parent_based: true,
        },
        Sampling {
            root: TraceIdRatio(0.3),
            parent_based: true,
        },
        Sampling {
            root: TraceIdRatio(0.3),
            parent_based: false,
        },
        Sampling {
            root: AlwaysOn,
            parent_based: false,
        },
        Sampling {
            root: AlwaysOff,
            parent_based: false,
        },
    ];
    for sampling in samplings {
        let sdk = sdk_sampler(sampling);
        let mut sampled = 0;
        for _ in 0..2_000 {
            let id = crate::trace::new_trace_id();
            for parent in [None, Some(true), Some(false)] {
                let cx = match parent {
                    None => Context::new(),
                    Some(flag) => Context::new().with_remote_span_context(SpanContext::new(
                        id.into(),
                        crate::trace::new_span_id().into(),
                        TraceFlags::new(u8::from(flag)),
                        true,
                        TraceState::default(),
                    )),
                };
                let decision = sdk
                    .should_sample(Some(&cx), id.into(), "request", &SpanKind::Server, &[], &[])
                    .decision;
                let ours = sampling.sampled(parent, id);
                assert_eq!(
                    decision == SamplingDecision::RecordAndSample,
                    ours,
                    "{sampling}, parent {parent:?}, trace {id:032x}"
                );
                sampled += usize::from(ours);
            }
        }
        if let TraceIdRatio(_) = sampling.root {
            assert!(sampled > 0 && sampled < 6_000, "a ratio samples some: {sampled}");
        }
    }
}

/// What the collector received: each request's path and the spans it carried.
type Received = Arc<Mutex<Vec<(String, ExportTraceServiceRequest)>>>;

/// An OTLP/HTTP collector that speaks TLS only (with the test's server certificate), on a free
/// port of `ip`: it keeps every request it can read and answers 200. Returns its https endpoint.
async fn collector(ip: &str, certs: &Certs) -> (String, Received) {
    collector_asking(ip, certs, false).await
}

/// The same; with `client_certificates`, it asks every client for a certificate its CA signed
/// (mutual TLS) and refuses the handshake without one.
async fn collector_asking(ip: &str, certs: &Certs, client_certificates: bool) -> (String, Received) {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&certs.server_cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&certs.server_key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_certificates {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(
            CertificateDer::pem_file_iter(&certs.ca)
                .unwrap()
                .map(Result::unwrap),
        );
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(chain, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let endpoint = format!("https://{}", listener.local_addr().unwrap());
    let received = Received::default();
    let kept = received.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, kept) = (acceptor.clone(), kept.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls, kept).await;
                }
            });
        }
    });
    (endpoint, received)
}

/// HTTP/1.1 requests with a content-length, one after the other on one connection.
async fn serve(stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>, kept: Received) {
    let mut stream = BufReader::new(stream);
    loop {
        let (mut path, mut length) = (None, 0usize);
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            match path {
                None => path = line.split(' ').nth(1).map(str::to_string),
                Some(_) => {
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap();
                    }
                }
            }
        }
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let request = ExportTraceServiceRequest::decode(&body[..]).expect("an OTLP trace export");
        kept.lock().unwrap().push((path.unwrap_or_default(), request));
        let answer = ExportTraceServiceResponse::default().encode_to_vec();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        let out = stream.get_mut();
        if out.write_all(head.as_bytes()).await.is_err() || out.write_all(&answer).await.is_err() {
            return;
        }
        let _ = out.flush().await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_https_collector_verified_with_the_ca_of_otel_exporter_otlp_certificate() {
    let certs = certs();
    let (endpoint, received) = collector("127.41.0.1", &certs).await;
    let s = settings(&[(ENDPOINT, endpoint.as_str()), (CERTIFICATE, text(&certs.ca))]);
    assert!(s.trusting().unwrap().contains(CERTIFICATE));
    let pod = KeyValue::new("k8s.pod.name", "w-0");
    let provider = provider(
        &s,
        Sampling::default(),
        vec![pod],
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    let tracer = provider.tracer("test");

    // A message without a traceparent: a root span, then its actor's span under it.
    let root = start_with(&tracer, None, Hop::Request { verb: "tell" }, &"ns/a");
    let trace = trace_of(&root, None).unwrap();
    let message = start_with(&tracer, Some(&trace), Hop::Message, &"ns/a");
    let handled = trace_of(&message, Some(trace)).unwrap();
    assert!(
        trace.sampled(),
        "parentbased_always_on samples the traces it starts"
    );
    assert_eq!(handled.trace_id, trace.trace_id);
    drop(message);
    drop(root);
    let flushed = tokio::task::spawn_blocking(move || {
        let r = provider.force_flush();
        let _ = provider.shutdown();
        (r, provider)
    })
    .await
    .unwrap();
    assert!(flushed.0.is_ok(), "{:?}", flushed.0);
    // Once shut down, the SDK gives no ids: the worker then uses its own (trace::within).
    let late = start_with(&tracer, None, Hop::Request { verb: "tell" }, &"ns/a");
    assert_eq!(trace_of(&late, None), None);

    let got = received.lock().unwrap().clone();
    let spans: Vec<_> = got
        .iter()
        .flat_map(|(_, r)| r.resource_spans.iter())
        .flat_map(|r| r.scope_spans.iter())
        .flat_map(|s| s.spans.iter())
        .collect();
    assert!(got.iter().all(|(path, _)| path == "/v1/traces"), "{got:?}");
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let (request, handled_span) = (&spans[1], &spans[0]);
    assert_eq!(
        (request.name.as_str(), handled_span.name.as_str()),
        ("request", "message")
    );
    assert_eq!(hex(&request.trace_id), trace.trace_id_hex());
    assert_eq!(hex(&request.span_id), trace.span_id_hex());
    assert!(request.parent_span_id.is_empty(), "the root of its trace");
    assert_eq!(hex(&handled_span.trace_id), trace.trace_id_hex());
    assert_eq!(
        handled_span.parent_span_id, request.span_id,
        "the message's span is under the request's"
    );
    assert_eq!(hex(&handled_span.span_id), handled.span_id_hex());
}

/// One export request to `s`'s endpoint with `s`'s client, as the SDK sends it.
async fn send_one(s: &Settings) -> Result<Response<Bytes>, String> {
    let client = TokioHttp::new(s, tokio::runtime::Handle::current()).unwrap();
    let body = ExportTraceServiceRequest::default().encode_to_vec();
    let request = Request::post(s.endpoint.as_str())
        .header("content-type", "application/x-protobuf")
        .body(Bytes::from(body))
        .unwrap();
    client.send_bytes(request).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_whose_certificate_the_given_ca_did_not_sign_is_refused_with_the_reason() {
    let certs = certs();
    let (url, received) = collector("127.41.0.2", &certs).await;
    let endpoint = (ENDPOINT, url.as_str());

    let wrong = settings(&[endpoint, (CERTIFICATE, text(&certs.wrong_ca))]);
    let e = send_one(&wrong)
        .await
        .expect_err("a collector the CA did not sign");
    assert!(
        e.contains("not signed by a trusted root") && e.contains(CERTIFICATE) && e.contains("wrong-ca.crt"),
        "{e}"
    );
    // Without a CA file the system's roots are trusted, and they did not sign it either.
    if let Ok(Some(system)) = Settings::from_env(env_of(&[endpoint])) {
        let e = send_one(&system)
            .await
            .expect_err("a collector no system root signed");
        assert!(
            e.contains("not signed by a trusted root (the system's trusted roots)"),
            "{e}"
        );
    }
    assert!(
        received.lock().unwrap().is_empty(),
        "nothing reached the collector"
    );

    // The same collector with the right CA: the refusal was the CA's.
    let right = settings(&[endpoint, (CERTIFICATE, text(&certs.ca))]);
    let answer = send_one(&right).await.expect("the CA signed it");
    assert_eq!(answer.status(), 200);
    assert_eq!(received.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_certificate_for_other_host_names_is_refused_with_the_reason() {
    let certs = certs();
    let (endpoint, received) = collector("127.41.0.3", &certs).await;
    let s = settings(&[(ENDPOINT, endpoint.as_str()), (CERTIFICATE, text(&certs.ca))]);
    let e = send_one(&s)
        .await
        .expect_err("the certificate is not for 127.41.0.3");
    assert!(
        e.contains("not valid for the endpoint's host name \"127.41.0.3\""),
        "{e}"
    );
    assert!(received.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_exporter_never_sends_spans_over_plain_http() {
    // The CA's client only goes over https (https_only): a redirect or a mistake cannot make it
    // send spans in the clear.
    let certs = certs();
    let s = settings(&[
        (ENDPOINT, "https://127.41.0.4:22004"),
        (CERTIFICATE, text(&certs.ca)),
    ]);
    let client = TokioHttp::new(&s, tokio::runtime::Handle::current()).unwrap();
    let request = Request::post("http://127.41.0.4:22004/v1/traces")
        .body(Bytes::new())
        .unwrap();
    let e = client
        .send_bytes(request)
        .await
        .expect_err("http refused")
        .to_string();
    assert!(e.contains("URL scheme is not allowed"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_asks_for_client_certificates_takes_spans_only_with_one_its_ca_signed() {
    let certs = certs();
    let (url, received) = collector_asking("127.41.0.2", &certs, true).await;
    let base = [(ENDPOINT, url.as_str()), (CERTIFICATE, text(&certs.ca))];

    let without = settings(&base);
    let e = send_one(&without).await.expect_err("no client certificate");
    assert!(e.contains("CertificateRequired"), "{e}");
    let stranger = settings(&[
        base[0],
        base[1],
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            text(&certs.stranger_cert),
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", text(&certs.stranger_key)),
    ]);
    let e = send_one(&stranger)
        .await
        .expect_err("a certificate of another CA");
    assert!(e.contains("UnknownCA") || e.contains("BadCertificate"), "{e}");
    assert!(
        received.lock().unwrap().is_empty(),
        "nothing reached the collector"
    );

    let own = settings(&[
        base[0],
        base[1],
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", text(&certs.client_cert)),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", text(&certs.client_key)),
    ]);
    let answer = send_one(&own)
        .await
        .expect("the CA signed the client certificate");
    assert_eq!(answer.status(), 200);
    assert_eq!(received.lock().unwrap().len(), 1);
}
