//! Certificates for a state store that serves TLS (`troupe_proptest::certs`, shared with the
//! worker's tests): a CA, a server certificate it signs for `localhost` and 127.0.0.1, and a
//! second CA that signed nothing (the wrong one).

use troupe_proptest::certs::CertSpec;
pub use troupe_proptest::certs::Certs;

/// The certificates of one test. The server's key is ECDSA P-256 and its certificate is signed
/// with SHA-384 by a P-384 CA, so SCRAM's channel binding must hash with the certificate's own
/// algorithm (not the usual SHA-256) for a login to work.
pub fn make() -> Certs {
    Certs::make(&CertSpec {
        ca_curve: "P-384",
        digest: "sha384",
        ..CertSpec::default()
    })
}
