//! The actors' state store as the tests see it: the control plane's shared PostgreSQL, a private
//! one a test may stop and start (or that serves TLS only), and what a row really holds (read
//! with `psql`, not through the worker's own store code).

use std::{path::PathBuf, process::Command};

use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/postgres.sh");

/// The connection string of the control plane's PostgreSQL, the actors' state store
/// (`e2e/cluster.sh` writes it).
pub fn store_dsn() -> String {
    let dir = std::env::var("TROUPE_CLUSTER_DIR").expect("TROUPE_CLUSTER_DIR (set by make e2e)");
    std::fs::read_to_string(format!("{dir}/postgres.dsn"))
        .expect("the control plane's PostgreSQL (e2e/tools/install.sh postgres; cluster.sh starts it)")
        .trim()
        .to_string()
}

fn script(args: &[&str]) -> String {
    let out = Command::new(SCRIPT)
        .args(args)
        .output()
        .expect("running e2e/tools/postgres.sh");
    assert!(
        out.status.success(),
        "postgres.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A PostgreSQL server of the test's own, on a free loopback port: for a test that stops and
/// starts the store, which it must not do to the one every other test shares. Stopped and
/// removed when dropped.
pub struct OwnStore {
    data: PathBuf,
    port: u16,
    password: String,
}

impl OwnStore {
    /// Makes a fresh data folder and starts the server (a few seconds).
    pub fn start(test: &str) -> OwnStore {
        OwnStore::start_with(test, None, false)
    }

    /// The same, serving TLS with `certs`' server certificate, and TLS only (`hostssl`): a
    /// connection without TLS is refused.
    pub fn start_tls(test: &str, certs: &super::certs::Certs) -> OwnStore {
        OwnStore::start_with(test, Some(certs), false)
    }

    /// The same, also asking every client for a certificate signed by `certs`' CA for the user
    /// it logs in as (`clientcert=verify-full`), besides the password.
    pub fn start_mutual_tls(test: &str, certs: &super::certs::Certs) -> OwnStore {
        OwnStore::start_with(test, Some(certs), true)
    }

    fn start_with(test: &str, tls: Option<&super::certs::Certs>, client_ca: bool) -> OwnStore {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // Under /tmp: as root the server runs as the `postgres` user, who must reach it.
        let data = PathBuf::from(format!("/tmp/troupe-test-store-{test}-{port}"));
        let password: String = (0..24)
            .map(|_| (b'a' + rand::random::<u8>() % 26) as char)
            .collect();
        let password_file = data.with_extension("password");
        std::fs::write(&password_file, &password).expect("writing the password file");
        let log = data.with_extension("initdb.log");
        script(&[
            "init",
            &data.display().to_string(),
            &password_file.display().to_string(),
            &log.display().to_string(),
        ]);
        let _ = std::fs::remove_file(&password_file);
        if let Some(certs) = tls {
            let (data, cert, key, ca) = (
                data.display().to_string(),
                certs.server_cert.display().to_string(),
                certs.server_key.display().to_string(),
                certs.ca.display().to_string(),
            );
            let mut args = vec!["tls", &data, &cert, &key];
            if client_ca {
                args.push(&ca);
            }
            script(&args);
        }
        let store = OwnStore { data, port, password };
        store.resume();
        store
    }

    pub fn dsn(&self) -> String {
        self.dsn_at("127.0.0.1", "")
    }

    /// The connection string for `host` (the name TLS checks), with `query` (`?sslmode=…`, or
    /// empty) after the database.
    pub fn dsn_at(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://troupe:{}@{host}:{}/postgres{query}",
            self.password, self.port
        )
    }

    /// The connection string as libpq takes it for a store started with
    /// [`OwnStore::start_mutual_tls`]: verify-full with `certs`' CA, presenting their client
    /// certificate (`sslcert`, `sslkey`) for `localhost`.
    pub fn dsn_with_client_certificate(&self, certs: &super::certs::Certs) -> String {
        self.dsn_at(
            "localhost",
            &format!(
                "?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
                certs.ca.display(),
                certs.client_cert.display(),
                certs.client_key.display()
            ),
        )
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// Stops the server (fast shutdown: every client connection is cut).
    pub fn stop(&self) {
        script(&["stop", &self.data.display().to_string()]);
    }

    /// Starts it again on the same port and data, and waits until it answers.
    pub fn resume(&self) {
        script(&["start", &self.data.display().to_string(), &self.port.to_string()]);
    }
}

impl Drop for OwnStore {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT)
            .args(["stop", &self.data.display().to_string()])
            .output();
        let _ = std::fs::remove_dir_all(&self.data);
        for ext in ["log", "initdb.log"] {
            let _ = std::fs::remove_file(self.data.with_extension(ext));
        }
    }
}

/// What `query` returns through `psql` (libpq: the DSN's `sslmode` and `sslrootcert` apply),
/// unaligned, fields separated by tabs.
pub fn psql(dsn: &str, query: &str) -> String {
    let psql = PathBuf::from(script(&["bin"])).join("psql");
    let out = Command::new(psql)
        .args([dsn, "-At", "-F", "\t", "-c", query])
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What the store holds for an actor, as `(epoch, state)`, read with `psql` (None: no row).
pub fn stored_row(dsn: &str, namespace: &str, name: &str) -> Option<(i64, Value)> {
    // Names of Kubernetes objects hold no quote; the test made both.
    let query = format!(
        "SELECT epoch, state FROM troupe_actor_state WHERE namespace = '{namespace}' AND name = '{name}'"
    );
    let text = psql(dsn, &query);
    let (epoch, state) = text.split_once('\t')?;
    Some((
        epoch.parse().expect("an epoch"),
        serde_json::from_str(state).expect("a JSON state"),
    ))
}

/// The client certificates (their subject, or empty) of the worker's connections, as the
/// server saw them.
pub fn worker_client_certificates(dsn: &str) -> Vec<String> {
    let text = psql(
        dsn,
        "SELECT coalesce(s.client_dn, '') FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'troupe-worker'",
    );
    text.lines().map(str::to_string).collect()
}

/// The store's connections from workers (`application_name` troupe-worker), as `(all, TLS)`,
/// read with `psql` from `pg_stat_activity` and `pg_stat_ssl`.
pub fn worker_connections(dsn: &str) -> (u32, u32) {
    let text = psql(
        dsn,
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'troupe-worker'",
    );
    let (all, encrypted) = text.split_once('\t').expect("two counts");
    (all.parse().expect("a count"), encrypted.parse().expect("a count"))
}
