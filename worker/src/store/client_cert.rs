//! The certificate the worker presents to a store that authenticates clients by certificate
//! (`pg_hba.conf` method `cert`, or `clientcert=verify-ca|verify-full`): from the pool's client
//! certificate Secret (`TROUPE_STORE_CLIENT_CERT` and `TROUPE_STORE_CLIENT_KEY`, PEM, as
//! cert-manager writes `tls.crt` and `tls.key`), or from the connection string's `sslcert` and
//! `sslkey` files, as libpq reads them. Settings that cannot work (half a pair, a key that is not
//! the certificate's, two certificates) are refused, and the worker does not start.

pub use crate::tls_identity::ClientIdentity;

use super::dsn::ClientCertFiles;

/// The env variable that carries the client certificate (PEM), when the pool names one.
pub const CERT_ENV: &str = "TROUPE_STORE_CLIENT_CERT";
/// The env variable that carries its key (PEM, unencrypted).
pub const KEY_ENV: &str = "TROUPE_STORE_CLIENT_KEY";

/// The client certificate of the connection string's files or of the Secret's PEM texts
/// (`secret`: certificate, key), if any.
pub fn identity(
    files: Option<&ClientCertFiles>,
    secret: (Option<&str>, Option<&str>),
) -> Result<Option<ClientIdentity>, String> {
    let secret = (given(secret.0), given(secret.1));
    match (files, secret) {
        (Some(_), (Some(_), _) | (_, Some(_))) => Err(format!(
            "two client certificates are given: sslcert and sslkey in the connection string and \
             {CERT_ENV}/{KEY_ENV} (the pool's client certificate Secret); keep one"
        )),
        (Some(files), (None, None)) => {
            let read = |path: &std::path::Path, what: &str| {
                std::fs::read(path).map_err(|e| format!("reading {what} {}: {e}", path.display()))
            };
            let cert = read(&files.cert, "sslcert")?;
            let key = read(&files.key, "sslkey")?;
            let from = format!("sslcert {}", files.cert.display());
            ClientIdentity::from_pem(&cert, &key, from).map(Some)
        }
        (None, (Some(cert), Some(key))) => ClientIdentity::from_pem(
            cert.as_bytes(),
            key.as_bytes(),
            format!("the client certificate Secret's tls.crt ({CERT_ENV})"),
        )
        .map(Some),
        (None, (Some(_), None)) => Err(format!("{CERT_ENV} is set without {KEY_ENV}: give both")),
        (None, (None, Some(_))) => Err(format!("{KEY_ENV} is set without {CERT_ENV}: give both")),
        (None, (None, None)) => Ok(None),
    }
}

/// A key of the Secret that is set and not blank.
pub(super) fn given(pem: Option<&str>) -> Option<&str> {
    pem.filter(|pem| !pem.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use troupe_proptest::certs::{CertSpec, Certs};

    fn text(p: &std::path::Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn no_certificate_is_presented_unless_one_is_given() {
        assert!(identity(None, (None, None)).unwrap().is_none());
        assert!(
            identity(None, (Some(" \n"), Some(""))).unwrap().is_none(),
            "empty keys of a Secret"
        );
    }

    #[test]
    fn a_certificate_comes_from_the_secret_or_from_the_connection_strings_files() {
        let certs = Certs::make(&CertSpec::default());
        let (cert, key) = (text(&certs.client_cert), text(&certs.client_key));
        let from_secret = identity(None, (Some(&cert), Some(&key))).unwrap().unwrap();
        assert_eq!(from_secret.chain.len(), 1);
        assert!(from_secret.from.contains(CERT_ENV), "{}", from_secret.from);
        let files = ClientCertFiles {
            cert: certs.client_cert.clone(),
            key: certs.client_key.clone(),
        };
        let from_files = identity(Some(&files), (None, None)).unwrap().unwrap();
        assert_eq!(from_files.chain, from_secret.chain);
        assert!(from_files.from.starts_with("sslcert /"), "{}", from_files.from);
    }

    #[test]
    fn settings_that_cannot_work_are_refused_with_the_reason() {
        let certs = Certs::make(&CertSpec::default());
        let (cert, key) = (text(&certs.client_cert), text(&certs.client_key));
        let files = ClientCertFiles {
            cert: certs.client_cert.clone(),
            key: "/nonexistent/troupe-test.key".into(),
        };
        let refused = |files: Option<&ClientCertFiles>, secret: (Option<&str>, Option<&str>)| {
            identity(files, secret).err().expect("refused")
        };
        let e = refused(Some(&files), (Some(&cert), Some(&key)));
        assert!(e.starts_with("two client certificates"), "{e}");
        let e = refused(Some(&files), (None, None));
        assert!(e.starts_with("reading sslkey"), "{e}");
        let e = refused(None, (Some(&cert), None));
        assert!(e.contains("without TROUPE_STORE_CLIENT_KEY"), "{e}");
        let e = refused(None, (None, Some(&key)));
        assert!(e.contains("without TROUPE_STORE_CLIENT_CERT"), "{e}");
        let e = refused(None, (Some(&key), Some(&key)));
        assert!(e.contains("holds no certificate"), "{e}");
        let e = refused(
            None,
            (Some(&cert), Some("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n")),
        );
        assert!(
            e.contains("not an unencrypted PEM private key") && !e.contains("c2VjcmV0"),
            "{e}"
        );
    }
}
