//! TLS to an `https://` OTLP collector, on the TLS stack the worker already has: rustls with
//! the ring provider (as the store's TLS and kube's client), through `reqwest`. The collector's
//! certificate chain and host name are verified against the CA file that
//! `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` or `OTEL_EXPORTER_OTLP_CERTIFICATE` names (those
//! certificates alone are trusted then, as the OpenTelemetry SDKs do), or against the system's
//! roots without one. A client certificate is presented when the collector asks for one
//! (mutual TLS), from the files `OTEL_EXPORTER_OTLP_(TRACES_)CLIENT_CERTIFICATE` and
//! `_CLIENT_KEY` name. A CA or client certificate file that cannot be used stops the worker at
//! start with the reason.

use std::{error::Error, sync::Arc};

use rustls::ClientConfig;

pub use crate::tls_roots::Roots;
use crate::{
    tls_identity::{ClientIdentity, with_client_auth},
    tls_refusal::{refusal, rustls_error},
};

/// The CA file `var` names: its certificates alone are trusted.
pub fn roots_from_file(var: &str, path: &str) -> Result<Roots, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{var}: reading the CA file {path}: {e}"))?;
    Roots::from_pem(&pem, format!("{var} ({path})"))
}

/// The client certificate and key of the files `cert` and `key` (`var` names the certificate).
pub fn client_identity(var: &str, cert: &str, key: &str) -> Result<ClientIdentity, String> {
    let read = |path: &str, what: &str| {
        std::fs::read(path).map_err(|e| format!("{var}: reading the client {what} {path}: {e}"))
    };
    ClientIdentity::from_pem(
        &read(cert, "certificate")?,
        &read(key, "key")?,
        format!("{var} ({cert})"),
    )
}

/// The system's trusted roots (the worker's image carries a CA bundle).
pub fn system_roots() -> Result<Roots, String> {
    Roots::system(
        "the system's trusted roots",
        "the OTLP endpoint is https:// and no system root certificates were found to verify the \
         collector with: set OTEL_EXPORTER_OTLP_CERTIFICATE to its CA file (or SSL_CERT_FILE to \
         a CA bundle)",
    )
}

/// The TLS client settings for the collector: its chain and host name verified against `roots`.
pub struct Tls {
    config: ClientConfig,
    roots_from: String,
}

impl Tls {
    pub fn new(roots: Roots, client: Option<ClientIdentity>) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots.store),
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("TLS to the OTLP collector: {e}"))?;
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS to the OTLP collector: {e}"))?
            .with_webpki_verifier(verifier);
        let config = with_client_auth(config, client, "TLS to the OTLP collector")?;
        Ok(Tls {
            config,
            roots_from: roots.from,
        })
    }

    pub fn config(&self) -> ClientConfig {
        self.config.clone()
    }

    pub fn roots_from(&self) -> &str {
        &self.roots_from
    }
}

/// A failed export request in words: a refused handshake says why, naming where the trusted
/// roots come from; anything else gives the chain of causes (never the URL).
pub fn describe(e: &reqwest::Error, host: &str, roots_from: Option<&str>) -> String {
    let mut causes: Vec<String> = Vec::new();
    let mut tls: Option<&rustls::Error> = None;
    let mut next: Option<&(dyn Error + 'static)> = e.source();
    while let Some(cause) = next {
        tls = tls.or_else(|| rustls_error(cause));
        let text = cause.to_string();
        if !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        next = cause.source();
    }
    let roots = roots_from.unwrap_or("no root certificate");
    let Some(tls) = tls else {
        let what = if e.is_timeout() { "timed out" } else { "failed" };
        let causes = troupe_net::redact_urls_in(&causes.join(": "));
        return format!("sending spans to the collector {what}: {causes}");
    };
    refusal(tls, "collector", roots, || {
        format!("the collector's certificate is not valid for the endpoint's host name {host:?}")
    })
}
