//! The store over TLS, end to end: the CA in the store's Secret (`ca.crt`) reaches the workers
//! (`TROUPE_STORE_CA`), a connection string without `sslmode` then means verify-full, the
//! client certificate of the pool's `clientCertSecret` is presented to a store that asks for
//! one, counters keep their exact count across `kill -9` of their worker with the store serving
//! TLS only, and a pool whose Secret holds the wrong CA holds its actor with the certificate's
//! reason.

use super::*;
use crate::common::{
    TestEnv, certs, eventually,
    store::{OwnStore, stored_row, worker_client_certificates, worker_connections},
};

#[tokio::test]
async fn with_the_store_over_verified_mutual_tls_counters_keep_their_count_across_kill_9_and_a_wrong_ca_holds_the_actor_with_the_reason()
 {
    let certs = certs::make();
    // TLS only (`hostssl`), and a client certificate signed by the CA for the user (besides the
    // password): a worker that connected without either would be refused.
    let store = OwnStore::start_mutual_tls("durable-tls", &certs);
    let env = TestEnv::new("durable-tls").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    // No sslmode: with the Secret's ca.crt, verify-full, on the name the certificate holds.
    env.secret(
        "state-store",
        &[("dsn", &store.dsn_at("localhost", "")), ("ca.crt", &certs.ca_pem)],
    );
    let pem = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    env.secret(
        "worker-cert",
        &[
            ("tls.crt", &pem(&certs.client_cert)),
            ("tls.key", &pem(&certs.client_key)),
        ],
    );
    let persistence = "  persistence: {mode: EveryMessage, storeSecretRef: {name: state-store, clientCertSecret: worker-cert}}\n";
    let (expected, survivor_ip, on_victim) = faults::crash_a_worker(&env, persistence).await;
    let moved: Vec<&String> = on_victim.iter().collect();
    counts_kept(
        &env,
        &survivor_ip,
        &expected,
        &moved,
        "after kill -9, from the store over TLS",
    )
    .await;

    // The workers said how they reach the store.
    let survivor = env
        .pods()
        .await
        .into_iter()
        .find(|p| p["ip"] == survivor_ip.as_str())
        .unwrap();
    let log = env.container_log(survivor["name"].as_str().unwrap(), "worker");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("sslmode=verify-full, trusting the store Secret's ca.crt")
            && text.contains("presenting the client certificate Secret's tls.crt"),
        "{}: {text}",
        log.display()
    );

    // What the store holds, read by psql (libpq, verify-full with the same CA), and the TLS of
    // every connection the workers hold.
    let libpq = store.dsn_with_client_certificate(&certs);
    let c0 = counts_now(&env, &survivor_ip, ["c0".to_string()].iter()).await["c0"];
    let (_, state) = stored_row(&libpq, &env.namespace, "c0").expect("c0's row");
    assert_eq!(state, json!({ "value": c0 }));
    let (all, encrypted) = worker_connections(&libpq);
    assert!(all >= 1, "the workers' connections: {all}");
    assert_eq!(all, encrypted, "every connection of the workers is TLS");
    let presented = worker_client_certificates(&libpq);
    assert!(
        presented.iter().all(|dn| dn == "/CN=troupe"),
        "every connection of the workers presented the Secret's certificate: {presented:?}"
    );

    // A pool whose Secret holds a CA that did not sign the store's certificate: its actor is
    // held, and says why.
    env.secret(
        "wrong-store",
        &[
            ("dsn", &store.dsn_at("localhost", "")),
            ("ca.crt", &certs.wrong_ca_pem),
        ],
    );
    assert!(env.apply(
        "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {name: wrong}\nspec:\n  replicas: 1\n  persistence: {mode: EveryMessage, storeSecretRef: {name: wrong-store, clientCertSecret: worker-cert}}\n  template:\n    spec:\n      containers: [{name: worker, image: troupe/worker:0.1.0}]\n---\napiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {name: held}\nspec: {pool: wrong, behavior: counter}\n"
    ).0);
    let (phase, reason, message) = eventually("the actor of the wrong CA's pool held", WAIT, || {
        let now = ready(&env, "held");
        std::future::ready((now.1 == "StoreUnavailable").then_some(now))
    })
    .await;
    eprintln!("held: {phase} {reason}: {message}");
    assert_eq!(phase, "Starting");
    assert!(
        message.contains(
            "error performing TLS handshake: the store's certificate is not signed by a trusted root"
        ),
        "{message}"
    );
    assert!(!message.contains(store.password()), "{message}");
}
