//! The TLS plan's rules (which sslmode, which roots, what is refused) and the channel binding's
//! hash. The handshakes themselves are tested against a real PostgreSQL with `ssl = on`
//! (e2e/tests/state_store_tls.rs).

use std::path::PathBuf;

use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode as Pg;

use super::*;

const RSA384: &str = include_str!("testdata/rsa384.pem");
const EC256: &str = include_str!("testdata/ec256.pem");
const ED25519: &str = include_str!("testdata/ed25519.pem");

fn ok(mode: Option<SslMode>, root: Option<&RootCert>, ca: Option<&str>) -> TlsPlan {
    plan(mode, root, ca, None).unwrap_or_else(|e| panic!("{mode:?} {root:?}: {e}"))
}

fn refused(mode: Option<SslMode>, root: Option<&RootCert>, ca: Option<&str>) -> String {
    match plan(mode, root, ca, None) {
        Ok(p) => panic!("{mode:?} {root:?} was accepted: {}", p.summary),
        Err(e) => e,
    }
}

#[test]
fn a_silent_connection_string_verifies_fully_when_a_ca_is_given_and_prefers_tls_with_a_warning_otherwise() {
    let p = ok(None, None, Some(EC256));
    assert_eq!(p.ssl_mode, Pg::Require);
    assert_eq!(
        p.summary,
        "sslmode=verify-full, trusting the store Secret's ca.crt (TROUPE_STORE_CA)"
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    let p = ok(None, None, None);
    assert_eq!(p.ssl_mode, Pg::Prefer);
    assert_eq!(p.summary, "sslmode=prefer");
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(p.warnings[0].contains("sets no sslmode"), "{}", p.warnings[0]);
    // An empty key (a Secret's ca.crt left blank) is no CA.
    assert_eq!(ok(None, None, Some(" \n")).ssl_mode, Pg::Prefer);
}

#[test]
fn each_mode_maps_to_what_tokio_postgres_does_before_the_handshake() {
    for (mode, pg) in [
        (SslMode::Disable, Pg::Disable),
        (SslMode::Allow, Pg::Prefer),
        (SslMode::Prefer, Pg::Prefer),
        (SslMode::Require, Pg::Require),
        (SslMode::VerifyCa, Pg::Require),
        (SslMode::VerifyFull, Pg::Require),
    ] {
        assert_eq!(ok(Some(mode), None, Some(RSA384)).ssl_mode, pg, "{mode:?}");
    }
}

#[test]
fn weak_modes_say_what_they_leave_open() {
    let require = ok(Some(SslMode::Require), None, None);
    assert!(
        require.warnings.iter().any(|w| w.contains("not verified")),
        "{:?}",
        require.warnings
    );
    let prefer = ok(Some(SslMode::Prefer), None, None);
    assert!(prefer.warnings.iter().any(|w| w.contains("unencrypted")));
    let disable = ok(Some(SslMode::Disable), None, Some(EC256));
    assert!(disable.warnings.iter().any(|w| w.contains("not encrypted")));
    assert!(disable.warnings.iter().any(|w| w.contains("not used")));
    let ca = ok(Some(SslMode::VerifyCa), None, Some(EC256));
    assert!(ca.warnings.iter().any(|w| w.contains("not its host name")));
    // require with a CA verifies the chain, as libpq does.
    let require_ca = ok(Some(SslMode::Require), None, Some(EC256));
    assert!(
        require_ca
            .warnings
            .iter()
            .any(|w| w.contains("chain is verified"))
    );
    assert!(
        ok(Some(SslMode::VerifyFull), None, Some(EC256))
            .warnings
            .is_empty()
    );
}

#[test]
fn verifying_modes_need_a_root_certificate() {
    for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
        let e = refused(Some(mode), None, None);
        assert!(
            e.contains(&format!("sslmode={} needs a root certificate", mode.as_str())),
            "{e}"
        );
        assert!(e.contains("ca.crt"), "{e}");
    }
}

#[test]
fn system_roots_ask_for_verify_full_as_in_libpq() {
    for mode in [SslMode::Prefer, SslMode::Require, SslMode::VerifyCa] {
        let e = refused(Some(mode), Some(&RootCert::System), None);
        assert!(e.contains("use sslmode=verify-full"), "{e}");
    }
}

#[test]
fn two_sources_of_roots_are_refused() {
    let e = refused(None, Some(&RootCert::File("/x".into())), Some(EC256));
    assert!(e.contains("two root certificates"), "{e}");
}

#[test]
fn a_root_file_is_read_and_what_is_wrong_with_it_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, format!("{RSA384}{EC256}")).unwrap();
    let p = ok(None, Some(&RootCert::File(file.clone())), None);
    assert_eq!(p.ssl_mode, Pg::Require);
    assert_eq!(
        p.summary,
        format!("sslmode=verify-full, trusting sslrootcert {}", file.display())
    );

    let missing = PathBuf::from("/nonexistent/ca.pem");
    let e = refused(None, Some(&RootCert::File(missing)), None);
    assert!(
        e.starts_with("TLS: reading sslrootcert /nonexistent/ca.pem:"),
        "{e}"
    );
}

#[test]
fn a_ca_that_is_not_a_certificate_is_refused_with_the_reason() {
    let not_pem = refused(None, None, Some("just some text"));
    assert!(not_pem.contains("holds no certificate"), "{not_pem}");
    let key_only = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
    assert!(refused(None, None, Some(key_only)).contains("holds no certificate"));
    let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let e = refused(None, None, Some(bad_base64));
    assert!(e.contains("is not valid PEM"), "{e}");
    assert!(e.contains("the store Secret's ca.crt"), "{e}");
    let not_x509 = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let e = refused(None, None, Some(not_x509));
    assert!(e.contains("cannot be read as X.509"), "{e}");
    // One bad among good ones is not silently dropped.
    let e = refused(None, None, Some(&format!("{EC256}{not_x509}")));
    assert!(e.contains("1 of the 2 certificate(s)"), "{e}");
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

#[test]
fn channel_binding_hashes_with_the_certificates_signature_hash() {
    assert_eq!(end_point_digest(&der(RSA384)), Some(&ring::digest::SHA384));
    assert_eq!(end_point_digest(&der(EC256)), Some(&ring::digest::SHA256));
    assert_eq!(
        end_point_digest(&der(ED25519)),
        None,
        "no single hash: no binding"
    );
    assert_eq!(end_point_digest(b"\x30\x03\x02\x01\x00"), None);
    assert_eq!(end_point_digest(&[]), None);
}

#[test]
fn der_reading_stops_at_truncated_or_oversized_lengths() {
    assert_eq!(super::der(&[0x30, 0x02, 0x01]), None, "shorter than its length");
    assert_eq!(super::der(&[0x30, 0x80]), None, "indefinite length is not DER");
    assert_eq!(
        super::der(&[0x30, 0x85, 1, 1, 1, 1, 1]),
        None,
        "more than 4 length bytes"
    );
    assert_eq!(
        super::der(&[0x30, 0x81, 0x01, 0xaa, 0xbb]),
        Some((0x30, &[0xaa][..], &[0xbb][..]))
    );
    // Every prefix of a real certificate is read without panicking.
    let cert = der(RSA384);
    for n in 0..cert.len() {
        let _ = end_point_digest(&cert[..n]);
    }
}

#[test]
fn system_roots_are_loaded_for_verify_full_or_their_absence_is_said() {
    match plan(None, Some(&RootCert::System), None, None) {
        Ok(p) => {
            assert_eq!(p.ssl_mode, Pg::Require);
            assert_eq!(
                p.summary,
                "sslmode=verify-full, trusting the system's trusted roots (sslrootcert=system)"
            );
        }
        // A machine (or an image) without a CA bundle.
        Err(e) => assert!(e.contains("no system root certificates found"), "{e}"),
    }
}

#[test]
fn a_client_certificate_is_presented_only_with_its_own_key() {
    use super::super::client_cert::identity;
    use troupe_proptest::certs::{CertSpec, Certs};
    let certs = Certs::make(&CertSpec::default());
    let pem = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let (cert, key) = (pem(&certs.client_cert), pem(&certs.stranger_key));
    let mismatched = identity(None, (Some(&cert), Some(&key))).unwrap();
    match plan(None, None, Some(&certs.ca_pem), mismatched) {
        Err(e) => assert!(
            e.starts_with("TLS: the client certificate") && e.contains("key"),
            "{e}"
        ),
        Ok(_) => panic!("a key that is not the certificate's was taken"),
    }
    let own = identity(None, (Some(&cert), Some(&pem(&certs.client_key)))).unwrap();
    let p = plan(None, None, Some(&certs.ca_pem), own).unwrap();
    assert!(
        p.summary
            .ends_with("presenting the client certificate Secret's tls.crt (TROUPE_STORE_CLIENT_CERT)"),
        "{}",
        p.summary
    );
    let unused = identity(None, (Some(&cert), Some(&pem(&certs.client_key)))).unwrap();
    let p = plan(Some(SslMode::Disable), None, None, unused).unwrap();
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("client certificate given is not used")),
        "{:?}",
        p.warnings
    );
}
