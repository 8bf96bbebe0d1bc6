//! The journal of a durable actor, as a user reads it: `kubectl troupe journal`.

use serde_json::{Value, json};

use super::*;
use crate::common::{TestEnv, eventually, store::store_dsn};

/// The pool `ledgers` (EveryMessage, keeping deleted Actors' state: the test reads the journal
/// of one) and one counter in it, `spec.journal` keeping 3 entries.
const LEDGER: &str = "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {name: ledgers}\nspec:\n  replicas: 1\n  persistence: {mode: EveryMessage, storeSecretRef: {name: state-store}, whenDeleted: Retain}\n  template:\n    spec:\n      containers: [{name: worker, image: troupe/worker:0.1.0}]\n---\napiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {name: ledger}\nspec: {pool: ledgers, behavior: counter, journal: {keep: 3}}\n";

/// The same journaled counter in a pool that keeps no store (OnMove).
const NO_STORE: &str = "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {name: ephemeral}\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers: [{name: worker, image: troupe/worker:0.1.0}]\n---\napiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {name: forgetful}\nspec: {pool: ephemeral, behavior: counter, journal: {keep: 3}}\n";

/// `kubectl troupe journal ARGS… --json`, parsed; panics with stderr when it fails.
fn journal_json(env: &TestEnv, args: &[&str]) -> Value {
    let mut all = vec!["journal"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = env.kubectl_troupe(&all);
    assert!(
        out.status.success(),
        "kubectl troupe {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kubectl troupe journal --json prints JSON")
}

/// (uid, epoch, messages, value) of every entry, newest first.
fn entries(answer: &Value) -> Vec<(String, i64, i64, i64)> {
    answer["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["uid"].as_str().unwrap().to_string(),
                e["epoch"].as_i64().unwrap(),
                e["messages"].as_i64().unwrap(),
                e["state"]["value"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn condition(env: &TestEnv, actor: &str, type_: &str) -> Option<(String, String)> {
    let a = env.kubectl_json(&["get", "actor", actor]);
    a["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
}

async fn ledger_running(env: &TestEnv) -> (String, i64) {
    eventually("the ledger Running", WAIT, || {
        let a = env.kubectl_json(&["get", "actor", "ledger"]);
        let running = a["status"]["phase"] == "Running";
        std::future::ready(running.then(|| {
            (
                a["metadata"]["uid"].as_str().unwrap().to_string(),
                a["status"]["epoch"].as_i64().unwrap(),
            )
        }))
    })
    .await
}

#[tokio::test]
async fn kubectl_troupe_journal_prints_the_newest_committed_states_of_the_current_actor() {
    let env = TestEnv::new("durable-journal").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    env.secret("state-store", &[("dsn", &store_dsn())]);
    assert!(env.apply(LEDGER).0);
    let (uid, epoch) = ledger_running(&env).await;
    let ip = env.pods().await[0]["ip"].as_str().unwrap().to_string();
    for _ in 0..5 {
        assert_eq!(send(&env, &ip, "ledger", "tell", json!(1)).await.status(), 202);
    }

    // Each committed tell is an entry; spec.journal keeps the newest 3.
    let answer = journal_json(&env, &["ledger"]);
    let expected: Vec<_> = [5, 4, 3].map(|v| (uid.clone(), epoch, 1, v)).into();
    assert_eq!(entries(&answer), expected, "{answer}");
    assert_eq!(
        condition(&env, "ledger", "Journaled"),
        Some(("True".into(), "Journaling".into()))
    );
    // The table a user reads: a header, then one line per entry, newest first.
    let out = env.kubectl_troupe(&["journal", "ledger"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("SEQ") && lines[0].ends_with("STATE"),
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[1].ends_with(r#"{"value":5}"#), "{table}");
    assert!(lines[3].ends_with(r#"{"value":3}"#), "{table}");
    assert_eq!(
        journal_json(&env, &["ledger", "--limit", "1"])["entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // An Actor created again under the same name starts a journal of its own; --all shows the
    // entries of the one deleted too.
    env.kubectl_ok(&["delete", "actor", "ledger", "--wait=true"]);
    assert!(env.apply(LEDGER).0);
    let (new_uid, _) = eventually("the new ledger Running", WAIT, || {
        let a = env.kubectl_json(&["get", "actor", "ledger"]);
        let fresh =
            a["metadata"]["uid"].as_str().is_some_and(|u| u != uid) && a["status"]["phase"] == "Running";
        std::future::ready(fresh.then(|| (a["metadata"]["uid"].as_str().unwrap().to_string(), ())))
    })
    .await;
    assert_eq!(send(&env, &ip, "ledger", "tell", json!(7)).await.status(), 202);
    let now = entries(&journal_json(&env, &["ledger"]));
    assert_eq!(now.len(), 1, "only the new Actor's entry: {now:?}");
    assert_eq!((now[0].0.as_str(), now[0].3), (new_uid.as_str(), 7));
    let all = entries(&journal_json(&env, &["ledger", "--all"]));
    assert_eq!(
        all.iter().map(|e| e.3).collect::<Vec<_>>(),
        [7, 5, 4],
        "the newest 3 of the name, of both Actors: {all:?}"
    );

    // In a pool that keeps no store, nothing is journaled, and both the status and the command
    // say why.
    assert!(env.apply(NO_STORE).0);
    eventually("the unjournaled actor says why", WAIT, || {
        let c = condition(&env, "forgetful", "Journaled");
        std::future::ready((c == Some(("False".into(), "NoStateStore".into()))).then_some(()))
    })
    .await;
    let out = env.kubectl_troupe(&["journal", "forgetful"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("keeps no state store"), "{stderr}");
}
