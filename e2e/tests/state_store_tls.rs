//! TLS to the state store, against a real PostgreSQL of each test's own that serves TLS only
//! (`ssl = on`, `hostssl` entries alone, certificates made for the test with openssl), through
//! the worker's own store code (`PgStore`, as `troupe-worker` builds it from `TROUPE_STORE_DSN`
//! and `TROUPE_STORE_CA`). No control plane needed; the actors' side is in
//! `durable/tls.rs`.

mod common;

use std::{process::Command, time::Instant};

use common::{
    certs,
    store::{OwnStore, stored_row, worker_client_certificates, worker_connections},
};
use serde_json::json;
use troupe_worker::{
    host::ActorKey,
    store::{StateRef, StateStore, StoreError, postgres::PgStore},
};

fn actor(name: &str) -> StateRef {
    StateRef {
        key: ActorKey::new(format!("tls-{}", std::process::id()), name),
        uid: "uid-1".into(),
        pool: "p".into(),
    }
}

/// Why the store could not be reached, for a store that must refuse (the text a worker puts in
/// its actors' `StoreUnavailable` condition, after "waiting for the state store").
async fn refusal(store: &PgStore, what: &str) -> String {
    match store.activate(&actor("refused"), 1, None).await {
        Err(StoreError::Unavailable(why)) => why,
        other => panic!("{what}: expected the store to be unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn verify_full_with_the_right_ca_reaches_the_store_over_tls_and_a_counters_state_carries_to_the_next_worker()
 {
    let certs = certs::make();
    let store = OwnStore::start_tls("tls-verified", &certs);

    // The server takes TLS only: a plain connection is refused, in PostgreSQL's words.
    let plain = PgStore::new(&store.dsn_at("127.0.0.1", "?sslmode=disable")).unwrap();
    let why = refusal(&plain, "sslmode=disable").await;
    assert!(
        why.contains("no pg_hba.conf entry") && why.contains("no encryption"),
        "{why}"
    );

    // Worker A: the CA from the Secret (TROUPE_STORE_CA), a connection string that names no
    // sslmode (so verify-full), the host name the certificate names.
    let a = PgStore::with_ca(&store.dsn_at("localhost", ""), Some(&certs.ca_pem)).unwrap();
    let counter = actor("counter");
    assert_eq!(a.activate(&counter, 1, None).await.unwrap(), None);
    for value in 1..=5 {
        // A counter told 5 times with EveryMessage: each change committed before its 202.
        a.save(&counter, 1, &json!({ "value": value }), None)
            .await
            .unwrap();
    }

    // Worker B, after A is gone: the CA as sslrootcert, the address the certificate also names
    // (127.0.0.1), and channel binding required: its SCRAM login is tied to this TLS session
    // (SCRAM-SHA-256-PLUS), which works only if the certificate's hash is the server's own.
    drop(a);
    let b_dsn = store.dsn_at(
        "127.0.0.1",
        &format!(
            "?sslmode=verify-full&sslrootcert={}&channel_binding=require",
            certs.ca.display()
        ),
    );
    let b = PgStore::new(&b_dsn).unwrap();
    assert_eq!(
        b.activate(&counter, 2, None).await.unwrap(),
        Some(json!({"value": 5})),
        "the next worker restores the count"
    );
    b.save(&counter, 2, &json!({"value": 6}), None).await.unwrap();

    // Read back with psql (libpq, verify-full with the same CA): the row and the TLS of every
    // connection the worker's store holds.
    let libpq = store.dsn_at(
        "localhost",
        &format!("?sslmode=verify-full&sslrootcert={}", certs.ca.display()),
    );
    assert_eq!(
        stored_row(&libpq, &counter.key.namespace, "counter"),
        Some((2, json!({"value": 6})))
    );
    let (all, encrypted) = worker_connections(&libpq);
    assert!(all >= 1, "the worker's connections: {all}");
    assert_eq!(all, encrypted, "every connection of the worker is TLS");
}

#[tokio::test]
async fn a_store_that_asks_for_client_certificates_takes_the_workers_and_refuses_none_or_a_strangers() {
    let certs = certs::make();
    let store = OwnStore::start_mutual_tls("tls-client-cert", &certs);
    let pem = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let dsn = store.dsn_at("localhost", "");

    // No certificate: refused by the server, in its words.
    let none = PgStore::with_ca(&dsn, Some(&certs.ca_pem)).unwrap();
    let why = refusal(&none, "no client certificate").await;
    assert!(why.contains("requires a valid client certificate"), "{why}");
    // A certificate for the right name from a CA the server does not trust: refused too.
    let (stranger_cert, stranger_key) = (pem(&certs.stranger_cert), pem(&certs.stranger_key));
    let stranger = PgStore::with_tls(
        &dsn,
        Some(&certs.ca_pem),
        (Some(&stranger_cert), Some(&stranger_key)),
    )
    .unwrap();
    let why = refusal(&stranger, "a stranger's certificate").await;
    assert!(
        why.contains("the store refused the client certificate of the client certificate Secret's tls.crt")
            && why.contains("UnknownCA"),
        "{why}"
    );

    // Worker A: the certificate of the pool's client certificate Secret (tls.crt, tls.key).
    let (cert, key) = (pem(&certs.client_cert), pem(&certs.client_key));
    let a = PgStore::with_tls(&dsn, Some(&certs.ca_pem), (Some(&cert), Some(&key))).unwrap();
    let counter = actor("counter");
    assert_eq!(a.activate(&counter, 1, None).await.unwrap(), None);
    a.save(&counter, 1, &json!({"value": 3}), None).await.unwrap();
    let libpq = store.dsn_with_client_certificate(&certs);
    let seen = worker_client_certificates(&libpq);
    assert!(
        !seen.is_empty() && seen.iter().all(|dn| dn == "/CN=troupe"),
        "every connection of the worker presented its certificate: {seen:?}"
    );
    drop(a);

    // Worker B: the files of the connection string (sslcert, sslkey), as libpq reads them.
    let b = PgStore::new(&libpq).unwrap();
    assert_eq!(
        b.activate(&counter, 2, None).await.unwrap(),
        Some(json!({"value": 3})),
        "the next worker restores the state"
    );
    assert_eq!(
        stored_row(&libpq, &counter.key.namespace, "counter"),
        Some((2, json!({"value": 3})))
    );
}

#[tokio::test]
async fn a_wrong_ca_or_host_name_is_refused_with_a_readable_reason_and_the_weaker_modes_mean_what_libpq_says()
{
    let certs = certs::make();
    let store = OwnStore::start_tls("tls-refused", &certs);
    let password = store.password().to_string();

    // verify-full, a CA that did not sign the server's certificate.
    let started = Instant::now();
    let wrong_ca = PgStore::with_ca(&store.dsn_at("localhost", ""), Some(&certs.wrong_ca_pem)).unwrap();
    let why = refusal(&wrong_ca, "a wrong CA").await;
    eprintln!("wrong CA: {why}");
    assert!(why.contains("error performing TLS handshake"), "{why}");
    assert!(
        why.contains("the store's certificate is not signed by a trusted root (the store Secret's ca.crt"),
        "{why}"
    );
    assert!(!why.contains(&password), "{why}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "refused at once, not timed out"
    );

    // verify-full, the right CA, a host name the certificate does not name (the TCP connection
    // goes to the server all the same: hostaddr).
    let other_name = store.dsn_at("db.invalid", "?hostaddr=127.0.0.1");
    let wrong_host = PgStore::with_ca(&other_name, Some(&certs.ca_pem)).unwrap();
    let why = refusal(&wrong_host, "a wrong host name").await;
    eprintln!("wrong host name: {why}");
    assert!(
        why.contains("the store's certificate is not valid for the host name \"db.invalid\""),
        "{why}"
    );
    assert!(
        why.contains("localhost"),
        "names what the certificate is valid for: {why}"
    );
    assert!(!why.contains(&password), "{why}");

    // verify-ca checks the chain, not the name: the same connection is made.
    let ca_only = PgStore::with_ca(&format!("{other_name}&sslmode=verify-ca"), Some(&certs.ca_pem)).unwrap();
    assert_eq!(ca_only.activate(&actor("ca-only"), 1, None).await.unwrap(), None);
    // ...and still refuses a chain to another CA.
    let ca_wrong = PgStore::with_ca(
        &format!("{other_name}&sslmode=verify-ca"),
        Some(&certs.wrong_ca_pem),
    )
    .unwrap();
    assert!(
        refusal(&ca_wrong, "verify-ca, wrong CA")
            .await
            .contains("not signed by a trusted root")
    );

    // require with a CA verifies the chain, as libpq does; without one it only encrypts.
    let require = store.dsn_at("localhost", "?sslmode=require");
    let require_wrong = PgStore::with_ca(&require, Some(&certs.wrong_ca_pem)).unwrap();
    assert!(
        refusal(&require_wrong, "require, wrong CA")
            .await
            .contains("not signed by a trusted root")
    );
    let require_alone = PgStore::new(&require).unwrap();
    assert_eq!(
        require_alone.activate(&actor("require"), 1, None).await.unwrap(),
        None
    );

    // No sslmode and no CA: libpq's prefer, so TLS when the server offers it (as here).
    let silent = PgStore::new(&store.dsn_at("127.0.0.1", "")).unwrap();
    assert_eq!(silent.activate(&actor("prefer"), 1, None).await.unwrap(), None);
}

#[test]
fn a_worker_given_a_ca_that_is_no_certificate_stops_at_its_start_and_says_why() {
    // The default worker binary, beside this test's (cargo builds both); no API server needed:
    // the store's settings are checked first.
    let exe = std::env::current_exe().unwrap();
    let worker = exe.parent().unwrap().parent().unwrap().join("troupe-worker");
    let run = |dsn: &str, ca: &str| {
        let started = Instant::now();
        let out = Command::new(&worker)
            .env_clear()
            .envs([
                ("POD_NAME", "w-0"),
                ("POD_NAMESPACE", "tls"),
                ("TROUPE_POOL", "p"),
                ("TROUPE_PERSISTENCE", "EveryMessage"),
                ("TROUPE_STORE_DSN", dsn),
                ("TROUPE_STORE_CA", ca),
                ("KUBECONFIG", "/nonexistent"),
            ])
            .output()
            .unwrap_or_else(|e| panic!("running {} (cargo build builds it): {e}", worker.display()));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let dsn = "postgres://troupe:s3cret-pw@db:5432/app";
    let err = run(
        dsn,
        "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n",
    );
    assert!(
        err.contains("the state store's TLS settings: TLS: 1 of the 1 certificate(s) in the store Secret's ca.crt (TROUPE_STORE_CA) cannot be read as X.509"),
        "{err}"
    );
    assert!(!err.contains("s3cret-pw"), "{err}");

    let err = run(
        &format!("{dsn}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
        "",
    );
    assert!(
        err.contains("TLS: reading sslrootcert /nonexistent/ca.pem"),
        "{err}"
    );
    let err = run(&format!("{dsn}?sslmode=verify_full"), "");
    assert!(err.contains("sslmode must be one of"), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
}
