//! A client certificate and its key for the worker's TLS clients (the state store's connections
//! and the OTLP exporter), read from PEM, named by where it came from so that a refusal says
//! which certificate was refused.

use rustls::{
    ClientConfig, ConfigBuilder,
    client::WantsClientCert,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

/// A client certificate (its chain, leaf first) and its key, and where they came from.
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub from: String,
}

impl ClientIdentity {
    /// The certificate chain of `cert` and the key of `key` (PEM); at least one certificate,
    /// and an unencrypted key. Whether the key is the certificate's own is checked when a TLS
    /// client is made with them.
    pub fn from_pem(cert: &[u8], key: &[u8], from: String) -> Result<ClientIdentity, String> {
        let mut chain = Vec::new();
        for item in CertificateDer::pem_slice_iter(cert) {
            chain.push(item.map_err(|e| format!("{from} is not valid PEM: {e}"))?);
        }
        if chain.is_empty() {
            return Err(format!(
                "{from} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
            ));
        }
        // The key's own words are not repeated: a malformed key may still be mostly secret.
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| {
            format!(
                "the key of {from} is not an unencrypted PEM private key (PKCS#8, PKCS#1 or \
                 SEC1; encrypted keys are not supported)"
            )
        })?;
        Ok(ClientIdentity { chain, key, from })
    }
}

/// Finishes a TLS client's settings: presenting `client` to a server that asks for a
/// certificate, or none. A key that is not the certificate's is refused, the error starting
/// with `context`.
pub fn with_client_auth(
    builder: ConfigBuilder<ClientConfig, WantsClientCert>,
    client: Option<ClientIdentity>,
    context: &str,
) -> Result<ClientConfig, String> {
    match client {
        Some(ClientIdentity { chain, key, from }) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("{context}: the client certificate {from} and its key: {e}")),
        None => Ok(builder.with_no_client_auth()),
    }
}
