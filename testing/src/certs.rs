//! Certificates for one test, made with the `openssl` CLI (CI installs it): a CA, a server
//! certificate it signed, and a second CA that signed nothing (the wrong one). Shared by the
//! worker's OTLP tests and the end-to-end tests of the state store over TLS.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// What the server certificate says and how it is signed.
pub struct CertSpec<'a> {
    /// The server's names (`subjectAltName`): DNS names and IP addresses.
    pub server_names: &'a [&'a str],
    /// The CAs' key curve, e.g. `P-256`.
    pub ca_curve: &'a str,
    /// The digest the CA signs the certificates with, e.g. `sha256`.
    pub digest: &'a str,
    /// The client certificate's common name (a store that checks it wants its user's name).
    pub client_name: &'a str,
}

impl Default for CertSpec<'_> {
    fn default() -> Self {
        Self {
            server_names: &["localhost", "127.0.0.1"],
            ca_curve: "P-256",
            digest: "sha256",
            client_name: "troupe",
        }
    }
}

/// The files (and the CAs' PEM text) of one test, removed when dropped.
pub struct Certs {
    _dir: tempfile::TempDir,
    /// The CA that signed the server's certificate, as a file and as PEM text.
    pub ca: PathBuf,
    pub ca_pem: String,
    /// A CA that signed nothing the server presents.
    pub wrong_ca: PathBuf,
    pub wrong_ca_pem: String,
    /// The server's certificate and key (ECDSA P-256).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate the CA signed (for `client_name`), and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A client certificate for the same name that the wrong CA signed, and its key.
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (CI installs it: .ci/run)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn self_signed_ca(dir: &Path, name: &str, curve: &str) -> (PathBuf, String) {
    let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
    // openssl's default extensions for -x509 make it a CA (basicConstraints CA:TRUE).
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{curve}"),
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "2",
            "-subj",
            &format!("/CN=troupe test {name}"),
        ],
    );
    let path = dir.join(&cert);
    let pem = std::fs::read_to_string(&path).unwrap();
    (path, pem)
}

/// `DNS:` or `IP:` for each name, as `subjectAltName` wants them.
fn alt_names(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(_) => format!("IP:{n}"),
            Err(_) => format!("DNS:{n}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Signs a new P-256 key's certificate for `subject` with the CA `ca` (`ca.crt`, `ca.key`),
/// with the extensions of `ext`; writes `<name>.crt` and `<name>.key`.
fn signed(dir: &Path, ca: &str, name: &str, subject: &str, ext: &str, digest: &str) {
    let (key, csr, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={subject}"),
        ],
    );
    std::fs::write(
        dir.join(&extfile),
        format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{ext}\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            &format!("-{digest}"),
            "-extfile",
            &extfile,
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

impl Certs {
    /// Makes the CAs, a server certificate and client certificates as `spec` says, in a
    /// directory of their own.
    pub fn make(spec: &CertSpec) -> Certs {
        let dir = tempfile::Builder::new().prefix("troupe-tls-").tempdir().unwrap();
        let path = dir.path();
        let (ca, ca_pem) = self_signed_ca(path, "ca", spec.ca_curve);
        let (wrong_ca, wrong_ca_pem) = self_signed_ca(path, "wrong-ca", spec.ca_curve);
        let server_ext = format!(
            "subjectAltName={}\nextendedKeyUsage=serverAuth",
            alt_names(spec.server_names)
        );
        let server_name = spec.server_names.first().unwrap_or(&"server");
        signed(path, "ca", "server", server_name, &server_ext, spec.digest);
        let client_ext = "extendedKeyUsage=clientAuth";
        signed(path, "ca", "client", spec.client_name, client_ext, spec.digest);
        signed(
            path,
            "wrong-ca",
            "stranger",
            spec.client_name,
            client_ext,
            spec.digest,
        );
        Certs {
            server_cert: path.join("server.crt"),
            server_key: path.join("server.key"),
            client_cert: path.join("client.crt"),
            client_key: path.join("client.key"),
            stranger_cert: path.join("stranger.crt"),
            stranger_key: path.join("stranger.key"),
            _dir: dir,
            ca,
            ca_pem,
            wrong_ca,
            wrong_ca_pem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_addresses_become_ip_entries_and_the_others_dns_entries() {
        assert_eq!(
            alt_names(&["localhost", "127.41.0.1", "::1"]),
            "DNS:localhost,IP:127.41.0.1,IP:::1"
        );
    }

    #[test]
    fn the_server_and_client_certificates_are_signed_by_the_ca_and_the_strangers_by_the_wrong_one() {
        let certs = Certs::make(&CertSpec::default());
        let verify = |ca: &Path, cert: &Path, purpose: &str| {
            Command::new("openssl")
                .args(["verify", "-purpose", purpose, "-CAfile"])
                .arg(ca)
                .arg(cert)
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(verify(&certs.ca, &certs.server_cert, "sslserver"));
        assert!(!verify(&certs.wrong_ca, &certs.server_cert, "sslserver"));
        assert!(verify(&certs.ca, &certs.client_cert, "sslclient"));
        assert!(!verify(&certs.ca, &certs.stranger_cert, "sslclient"));
        assert!(verify(&certs.wrong_ca, &certs.stranger_cert, "sslclient"));
        assert!(
            !verify(&certs.ca, &certs.client_cert, "sslserver"),
            "a client is no server"
        );
    }
}
