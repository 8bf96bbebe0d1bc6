//! Trusted root certificates for the worker's TLS clients (the state store's connections and the
//! OTLP exporter): read from PEM or from the system, each set naming where it came from so that
//! a refused certificate says which roots it was checked against.

use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};

/// Trusted roots, and where they came from (said in every refusal).
pub struct Roots {
    pub store: RootCertStore,
    pub from: String,
}

impl Roots {
    /// The certificates of PEM text; at least one, and every one readable.
    pub fn from_pem(pem: &[u8], from: String) -> Result<Roots, String> {
        let mut certs = Vec::new();
        for item in CertificateDer::pem_slice_iter(pem) {
            certs.push(item.map_err(|e| format!("{from} is not valid PEM: {e}"))?);
        }
        if certs.is_empty() {
            return Err(format!(
                "{from} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
            ));
        }
        Roots::from_certs(certs, from, false)
    }

    /// The system's trusted roots (`SSL_CERT_FILE` or `SSL_CERT_DIR` can point elsewhere), named
    /// `from`; `none_found` is the refusal when there are none (followed by the loader's reason).
    pub fn system(from: &str, none_found: &str) -> Result<Roots, String> {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
            return Err(format!("{none_found}{why}"));
        }
        // A system bundle may hold a certificate webpki cannot use: the others are enough.
        Roots::from_certs(found.certs, from.to_string(), true)
    }

    /// `certs` as trusted roots; unless `skip_unreadable`, every one must be usable (a CA given
    /// on purpose that cannot be used is a mistake to say).
    fn from_certs(
        certs: Vec<CertificateDer<'static>>,
        from: String,
        skip_unreadable: bool,
    ) -> Result<Roots, String> {
        let mut store = RootCertStore::empty();
        let total = certs.len();
        let (added, ignored) = store.add_parsable_certificates(certs);
        if added == 0 || (ignored > 0 && !skip_unreadable) {
            return Err(format!(
                "{ignored} of the {total} certificate(s) in {from} cannot be read as X.509"
            ));
        }
        Ok(Roots { store, from })
    }
}
