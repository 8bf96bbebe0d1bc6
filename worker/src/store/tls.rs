//! TLS to the state store, with libpq's meanings of `sslmode` (docs/durability.md, "TLS to the
//! store"), on rustls with the ring provider (no OpenSSL in the worker's image).
//!
//! | sslmode | encrypted | server verified |
//! | --- | --- | --- |
//! | disable | no | no |
//! | allow, prefer | when the server offers TLS | the chain, when a root certificate is given |
//! | require | yes | the chain, when a root certificate is given (as libpq) |
//! | verify-ca | yes | the chain (a root certificate is needed) |
//! | verify-full | yes | the chain and the host name (a root certificate is needed) |
//!
//! A connection string that names no `sslmode` gets `verify-full` when a root certificate is
//! given, and libpq's `prefer` otherwise, with a warning (a store without TLS keeps working).
//! The trusted roots come from the store Secret's `ca.crt` (`TROUPE_STORE_CA`), from
//! `sslrootcert=<file>`, or from the system (`sslrootcert=system`, which asks for verify-full
//! as in libpq). A store that asks for a client certificate gets the one of `client_cert` (the
//! pool's client certificate Secret, or `sslcert`/`sslkey`). Settings that cannot work are refused when the store is made, so the worker
//! does not start with them; a server the settings refuse shows as the store being unavailable,
//! with the reason (`explain`).

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::WebPkiSupportedAlgorithms,
    pki_types::{CertificateDer, ServerName, UnixTime},
    server::ParsedCertificate,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use super::{
    client_cert::{ClientIdentity, given},
    dsn::{RootCert, SslMode},
};
use crate::{
    tls_identity::with_client_auth,
    tls_refusal::{refusal, rustls_error},
    tls_roots::Roots,
};

/// The env variable that carries the store Secret's CA (PEM), when the Secret has one.
pub const CA_ENV: &str = "TROUPE_STORE_CA";

/// How the worker connects to the store: tokio-postgres's mode and the connector.
pub struct TlsPlan {
    /// What tokio-postgres does before the handshake (disable, prefer or require).
    pub ssl_mode: tokio_postgres::config::SslMode,
    pub connector: MakeRustls,
    /// The mode in effect and where the roots come from, for the worker's start-up log.
    pub summary: String,
    /// What the settings leave open (no encryption, no verification), to log at start.
    pub warnings: Vec<String>,
}

/// Decides the plan from the connection string's `sslmode` and `sslrootcert`, the Secret's
/// CA (the PEM text of `TROUPE_STORE_CA`, when set) and the client certificate to present when
/// asked. The error says which setting is wrong.
pub fn plan(
    sslmode: Option<SslMode>,
    sslrootcert: Option<&RootCert>,
    secret_ca: Option<&str>,
    client: Option<ClientIdentity>,
) -> Result<TlsPlan, String> {
    let secret_ca = given(secret_ca);
    let roots = match (sslrootcert, secret_ca) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "two root certificates are given: sslrootcert in the connection string and {CA_ENV} \
                 (the store Secret's ca.crt); keep one"
            ));
        }
        (Some(RootCert::File(path)), None) => {
            let from = format!("sslrootcert {}", path.display());
            let pem = std::fs::read(path).map_err(|e| format!("TLS: reading {from}: {e}"))?;
            Some(Roots::from_pem(&pem, from).map_err(tls_error)?)
        }
        (Some(RootCert::System), None) => Some(
            Roots::system(
                "the system's trusted roots (sslrootcert=system)",
                "no system root certificates found for sslrootcert=system (SSL_CERT_FILE or \
                 SSL_CERT_DIR can point at them)",
            )
            .map_err(tls_error)?,
        ),
        (None, Some(pem)) => Some(
            Roots::from_pem(pem.as_bytes(), format!("the store Secret's ca.crt ({CA_ENV})"))
                .map_err(tls_error)?,
        ),
        (None, None) => None,
    };
    let mode = sslmode.unwrap_or(if roots.is_some() {
        SslMode::VerifyFull
    } else {
        SslMode::Prefer
    });
    if sslrootcert == Some(&RootCert::System) && mode != SslMode::VerifyFull {
        // libpq's rule: any CA the system trusts could have signed a certificate for the name.
        return Err(format!(
            "sslmode={} may not be used with sslrootcert=system: use sslmode=verify-full",
            mode.as_str()
        ));
    }

    let mut warnings = Vec::new();
    let verify = match (mode, &roots) {
        (SslMode::Disable, _) => {
            warnings.push("sslmode=disable: the connection to the state store is not encrypted".to_string());
            if roots.is_some() {
                warnings.push("sslmode=disable: the root certificate given is not used".to_string());
            }
            Verify::Nothing
        }
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(format!(
                "sslmode={} needs a root certificate to verify the store with: the key ca.crt in \
                 the store's Secret, sslrootcert=<file> or sslrootcert=system",
                mode.as_str()
            ));
        }
        (SslMode::VerifyFull, Some(_)) => Verify::ChainAndName,
        (SslMode::VerifyCa, Some(_)) => Verify::Chain,
        (SslMode::Allow | SslMode::Prefer | SslMode::Require, Some(_)) => Verify::Chain,
        (SslMode::Allow | SslMode::Prefer | SslMode::Require, None) => Verify::Nothing,
    };
    match (sslmode, mode, &roots) {
        (None, _, None) => warnings.push(
            "the store's connection string sets no sslmode and no root certificate is given: \
             connecting with sslmode=prefer (TLS when the server offers it, the server not \
             verified; unencrypted otherwise). Give the CA (key ca.crt in the store's Secret) \
             or set sslmode=verify-full"
                .to_string(),
        ),
        (Some(_), SslMode::Allow | SslMode::Prefer, _) => warnings.push(format!(
            "sslmode={}: the connection is unencrypted when the server does not offer TLS",
            mode.as_str()
        )),
        _ => {}
    }
    if verify == Verify::Nothing && mode >= SslMode::Allow {
        if sslmode.is_some() {
            warnings.push(format!(
                "sslmode={} without a root certificate: the store's certificate is not verified \
                 (anyone on the path could pose as the store)",
                mode.as_str()
            ));
        }
    } else if verify == Verify::Chain {
        warnings.push(format!(
            "sslmode={}: the store's certificate chain is verified, not its host name",
            mode.as_str()
        ));
    }

    let ssl_mode = match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    };
    let mut summary = match &roots {
        Some(r) if mode != SslMode::Disable => {
            format!("sslmode={}, trusting {}", mode.as_str(), r.from)
        }
        _ => format!("sslmode={}", mode.as_str()),
    };
    if let Some(client) = &client {
        if mode == SslMode::Disable {
            warnings.push("sslmode=disable: the client certificate given is not used".to_string());
        } else {
            summary.push_str(&format!(", presenting {}", client.from));
        }
    }
    Ok(TlsPlan {
        ssl_mode,
        connector: MakeRustls::new(verify, roots, client)?,
        summary,
        warnings,
    })
}

/// A refusal of the TLS settings, said as such.
fn tls_error(e: String) -> String {
    format!("TLS: {e}")
}

/// What is checked of the server's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verify {
    Nothing,
    Chain,
    ChainAndName,
}

/// Connects to the store over TLS with rustls: a [`MakeTlsConnect`] for tokio-postgres.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
    /// Where the trusted roots come from, for the reason of a refusal.
    roots_from: Arc<str>,
    /// Where the client certificate comes from, if one is presented.
    client_from: Option<Arc<str>>,
}

impl MakeRustls {
    fn new(
        verify: Verify,
        roots: Option<Roots>,
        client: Option<ClientIdentity>,
    ) -> Result<MakeRustls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let roots_from: Arc<str> = roots
            .as_ref()
            .map_or("no root certificate".into(), |r| r.from.as_str().into());
        let roots = roots.map(|r| Arc::new(r.store));
        let verified = match (verify, roots) {
            (Verify::ChainAndName, Some(roots)) => {
                let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| format!("TLS: {e}"))?;
                builder.with_webpki_verifier(verifier)
            }
            // The chain against the roots with verify-ca (and prefer/require given roots);
            // nothing of the certificate without.
            (verify, roots) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly {
                    roots: roots.filter(|_| verify == Verify::Chain),
                    algorithms,
                })),
        };
        let client_from = client.as_ref().map(|c| c.from.as_str().into());
        let mut config = with_client_auth(verified, client, "TLS")?;
        // PostgreSQL 17 asks for ALPN with sslnegotiation=direct; older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustls {
            config: Arc::new(config),
            roots_from,
            client_from,
        })
    }
}

/// verify-ca (and prefer/require with a root certificate): the chain up to a trusted root, not
/// the host name. Without roots (prefer/require alone), nothing of the certificate: libpq's
/// meaning of those modes. The handshake's signature is always checked against the
/// certificate's key.
#[derive(Debug)]
struct ChainOnly {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, io::Error> {
        // tokio-postgres asks for every host before it knows whether TLS will be used: "" for a
        // Unix socket, where PostgreSQL offers no TLS. A name rustls cannot use fails only if a
        // handshake is attempted.
        Ok(RustlsConnect {
            name: ServerName::try_from(host).ok().map(|n| n.to_owned()),
            host: host.to_string(),
            config: self.config.clone(),
            roots_from: self.roots_from.clone(),
            client_from: self.client_from.clone(),
        })
    }
}

/// One connection's handshake.
pub struct RustlsConnect {
    name: Option<ServerName<'static>>,
    host: String,
    config: Arc<ClientConfig>,
    roots_from: Arc<str>,
    client_from: Option<Arc<str>>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let Some(name) = self.name else {
                return Err(io::Error::other(format!(
                    "TLS needs the store's host name, and {:?} is not one rustls can check",
                    self.host
                )));
            };
            tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await
                .map(|tls| RustlsStream {
                    tls,
                    client_from: self.client_from,
                })
                .map_err(|e| explain(e, &self.host, &self.roots_from))
        })
    }
}

/// A handshake's failure in the words of the settings that caused it (tokio-postgres puts
/// "error performing TLS handshake" before it). Never the connection string.
fn explain(e: io::Error, host: &str, roots_from: &str) -> io::Error {
    let Some(tls) = rustls_error(&e) else {
        return io::Error::new(e.kind(), format!("the TLS handshake with the store failed: {e}"));
    };
    let why = refusal(tls, "store", roots_from, || {
        format!(
            "the store's certificate is not valid for the host name {host:?} of the connection \
             string (sslmode=verify-full checks it)"
        )
    });
    io::Error::new(e.kind(), why)
}

/// A refusal of this worker's client certificate, said as such. With TLS 1.3 the server
/// checks it after the handshake, so its alert arrives at the first read.
fn explain_read(e: io::Error, client_from: Option<&str>) -> io::Error {
    use rustls::{AlertDescription as A, Error as E};
    let (Some(from), Some(E::AlertReceived(alert))) = (client_from, rustls_error(&e)) else {
        return e;
    };
    match alert {
        A::UnknownCA
        | A::BadCertificate
        | A::UnsupportedCertificate
        | A::CertificateRevoked
        | A::CertificateExpired
        | A::CertificateUnknown
        | A::AccessDenied => io::Error::new(
            e.kind(),
            format!("the store refused the client certificate of {from}: received fatal alert: {alert:?}"),
        ),
        _ => e,
    }
}

/// A TLS connection to the store.
pub struct RustlsStream<S> {
    tls: tokio_rustls::client::TlsStream<S>,
    client_from: Option<Arc<str>>,
}

impl<S> tokio_postgres::tls::TlsStream for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// SCRAM's channel binding (`tls-server-end-point`, RFC 5929): the hash of the server's
    /// certificate, which ties the password exchange to this TLS session. PostgreSQL offers
    /// SCRAM-SHA-256-PLUS over TLS, and tokio-postgres uses it when this is given.
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.tls.get_ref();
        let Some(cert) = session.peer_certificates().and_then(|c| c.first()) else {
            return ChannelBinding::none();
        };
        match end_point_digest(cert) {
            Some(algorithm) => {
                ChannelBinding::tls_server_end_point(ring::digest::digest(algorithm, cert).as_ref().to_vec())
            }
            None => ChannelBinding::none(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.tls).poll_read(cx, buf) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(explain_read(e, self.client_from.as_deref()))),
            other => other,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}

/// The hash of `tls-server-end-point`: the one of the certificate's signature algorithm, with
/// MD5 and SHA-1 taken as SHA-256 (RFC 5929, 4.1). Other algorithms (RSA-PSS, whose hash is a
/// parameter; Ed25519, which has none) give no binding, and SCRAM goes without it, as
/// PostgreSQL's own rule for them is to offer none either.
fn end_point_digest(cert: &[u8]) -> Option<&'static ring::digest::Algorithm> {
    // DER of the OIDs' bodies: 1.2.840.113549.1.1.{4,5,11,12,13} (RSA with MD5, SHA-1, SHA-256,
    // -384, -512) and 1.2.840.10045.4.1, 1.2.840.10045.4.3.{2,3,4} (ECDSA with the same).
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    let oid = signature_algorithm(cert)?;
    let last = *oid.last()?;
    let body = &oid[..oid.len() - 1];
    match (body, last) {
        (RSA, 4 | 5 | 11) => Some(&ring::digest::SHA256),
        (RSA, 12) => Some(&ring::digest::SHA384),
        (RSA, 13) => Some(&ring::digest::SHA512),
        (ECDSA_SHA2, 2) => Some(&ring::digest::SHA256),
        (ECDSA_SHA2, 3) => Some(&ring::digest::SHA384),
        (ECDSA_SHA2, 4) => Some(&ring::digest::SHA512),
        _ if oid == ECDSA_SHA1 => Some(&ring::digest::SHA256),
        _ => None,
    }
}

/// The OID of `Certificate.signatureAlgorithm` (the second element of the certificate's
/// SEQUENCE, after the TBSCertificate).
fn signature_algorithm(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, cert, _) = der(cert)? else { return None };
    let (0x30, _tbs, rest) = der(cert)? else {
        return None;
    };
    let (0x30, algorithm, _) = der(rest)? else {
        return None;
    };
    let (0x06, oid, _) = der(algorithm)? else {
        return None;
    };
    Some(oid)
}

/// One DER element: its tag, its contents and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
