//! Certificates for a state store that serves TLS, made for one test with the `openssl` CLI
//! (CI installs it): a CA, a server certificate it signs, and a second CA that signed nothing
//! (the wrong one).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub struct Certs {
    pub dir: PathBuf,
    /// The CA that signed the server's certificate, as a file and as PEM text.
    pub ca: PathBuf,
    pub ca_pem: String,
    /// A CA that signed nothing the server presents.
    pub wrong_ca: PathBuf,
    pub wrong_ca_pem: String,
    /// The server's certificate (for `localhost` and 127.0.0.1) and key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
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

fn self_signed_ca(dir: &Path, name: &str) -> (PathBuf, String) {
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
            "ec_paramgen_curve:P-384",
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

impl Certs {
    /// Under `/tmp/tls-<test>-<pid>`, removed when dropped. The server's key is ECDSA P-256 and
    /// its certificate is signed with SHA-384, so SCRAM's channel binding must hash with the
    /// certificate's own algorithm (not the usual SHA-256) for a login to work.
    pub fn make(test: &str) -> Certs {
        let dir = PathBuf::from(format!("/tmp/tls-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (ca, ca_pem) = self_signed_ca(&dir, "ca");
        let (wrong_ca, wrong_ca_pem) = self_signed_ca(&dir, "wrong-ca");
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-sha384",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        Certs {
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            dir,
            ca,
            ca_pem,
            wrong_ca,
            wrong_ca_pem,
        }
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
