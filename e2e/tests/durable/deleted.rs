//! What a deleted Actor leaves in the store (`persistence.whenDeleted`): with Delete (the
//! default) its row and journal go with it — at once when its worker sees it go, or at the next
//! sweep when no worker ran it — and with Retain they stay. Read with `psql`, not through the
//! worker's own store code.

use serde_json::json;

use super::*;
use crate::common::{
    TestEnv, eventually,
    store::{psql, store_dsn, stored_row},
};

/// A journaled EveryMessage pool with two counters; `when_deleted` as the pool's policy line.
fn pool(name: &str, when_deleted: &str, actors: &[&str]) -> String {
    let mut out = format!(
        "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  persistence: {{mode: EveryMessage, storeSecretRef: {{name: state-store}}{when_deleted}}}\n  template:\n    spec:\n      containers: [{{name: worker, image: troupe/worker:0.1.0}}]\n"
    );
    for a in actors {
        out.push_str(&format!(
            "---\napiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {{name: {a}}}\nspec: {{pool: {name}, behavior: counter, journal: {{keep: 10}}}}\n"
        ));
    }
    out
}

/// Journal entries the store holds under an actor's name.
fn journal_entries(env: &TestEnv, name: &str) -> usize {
    let ns = &env.namespace;
    let query =
        format!("SELECT count(*) FROM troupe_actor_journal WHERE namespace = '{ns}' AND name = '{name}'");
    psql(&store_dsn(), &query).parse().expect("a count")
}

/// Tells each actor 1 three times through the pool's worker, until answered 202.
async fn tell_each(env: &TestEnv, pool: &str, actors: &[&str]) {
    let ip = eventually("the pool's worker", WAIT, || async {
        let pods = env.pods().await;
        let name = |p: &Value| p["name"].as_str().unwrap_or("").to_string();
        let of_pool = pods.iter().find(|p| name(p).starts_with(pool))?;
        of_pool["ip"].as_str().map(str::to_string)
    })
    .await;
    for a in actors {
        eventually("the actor Running", WAIT, || {
            let phase = env.kubectl_json(&["get", "actor", a])["status"]["phase"].clone();
            std::future::ready((phase == "Running").then_some(()))
        })
        .await;
        for _ in 0..3 {
            assert_eq!(send(env, &ip, a, "tell", json!(1)).await.status(), 202);
        }
    }
}

#[tokio::test]
async fn a_deleted_actors_state_and_journal_are_removed_unless_its_pool_retains_them() {
    let env = TestEnv::new("durable-deleted").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    env.secret("state-store", &[("dsn", &store_dsn())]);
    let dsn = store_dsn();
    let ns = env.namespace.clone();
    assert!(env.apply(&pool("removing", "", &["gone", "stays", "moves"])).0);
    assert!(env.apply(&pool("keeping", ", whenDeleted: Retain", &["kept"])).0);
    tell_each(&env, "removing", &["gone", "stays", "moves"]).await;
    tell_each(&env, "keeping", &["kept"]).await;
    for a in ["gone", "stays", "moves", "kept"] {
        assert_eq!(stored_row(&dsn, &ns, a).map(|r| r.1), Some(json!({"value": 3})));
        assert_eq!(journal_entries(&env, a), 3, "{a}'s journal");
    }

    // Deleted while its worker runs it: row and journal go within seconds.
    env.kubectl_ok(&["delete", "actor", "gone", "--wait=true"]);
    eventually("the deleted actor's row and journal removed", WAIT, || {
        let gone = stored_row(&dsn, &ns, "gone").is_none() && journal_entries(&env, "gone") == 0;
        std::future::ready(gone.then_some(()))
    })
    .await;

    // An actor that leaves its worker for another one is not taken for a deleted one (its
    // worker sees it leave with the same kind of watch event): a second worker takes one of the
    // two, and after the check that follows a departure (5 s) both keep their state and go on.
    env.kubectl_ok(&["scale", "actorpool", "removing", "--replicas", "2"]);
    let workers = eventually("the two actors on two workers", WAIT, || {
        let a = actors(&env);
        let on = |n: &str| {
            a.get(n)
                .filter(|(phase, ..)| phase == "Running")
                .map(|(_, w, ..)| w.clone())
        };
        let placed = (on("stays"), on("moves"));
        std::future::ready(match placed {
            (Some(x), Some(y)) if x != y => Some((x, y)),
            _ => None,
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let pods = env.pods().await;
    for (a, worker) in [("stays", &workers.0), ("moves", &workers.1)] {
        let ip = pods
            .iter()
            .find(|p| p["name"] == worker.as_str())
            .and_then(|p| p["ip"].as_str())
            .unwrap()
            .to_string();
        assert_eq!(send(&env, &ip, a, "tell", json!(1)).await.status(), 202);
        assert_eq!(
            stored_row(&dsn, &ns, a).map(|r| r.1),
            Some(json!({"value": 4})),
            "{a} kept its state through the move and the check"
        );
        assert_eq!(journal_entries(&env, a), 4, "{a}'s journal");
    }

    // Deleted while no worker runs it (its pool scaled to zero): the next worker's sweep at its
    // start removes it, and only it: the live actor's row and the Retain pool's deleted actor
    // in the same namespace stay.
    env.kubectl_ok(&["delete", "actor", "kept", "--wait=true"]);
    env.kubectl_ok(&["scale", "actorpool", "removing", "--replicas", "0"]);
    eventually("the removing pool's workers gone", WAIT, || async {
        let pods = env.pods().await;
        (!pods
            .iter()
            .any(|p| p["name"].as_str().unwrap_or("").starts_with("removing")))
        .then_some(())
    })
    .await;
    env.kubectl_ok(&["delete", "actor", "stays", "--wait=true"]);
    assert!(
        stored_row(&dsn, &ns, "stays").is_some(),
        "no worker ran it when it was deleted"
    );
    env.kubectl_ok(&["scale", "actorpool", "removing", "--replicas", "1"]);
    eventually(
        "the sweep removed the row of the actor deleted meanwhile",
        WAIT,
        || {
            let gone = stored_row(&dsn, &ns, "stays").is_none() && journal_entries(&env, "stays") == 0;
            std::future::ready(gone.then_some(()))
        },
    )
    .await;
    assert_eq!(
        stored_row(&dsn, &ns, "moves").map(|r| r.1),
        Some(json!({"value": 4})),
        "the sweep leaves a live Actor's state alone"
    );
    assert_eq!(
        stored_row(&dsn, &ns, "kept").map(|r| r.1),
        Some(json!({"value": 3})),
        "whenDeleted: Retain keeps the state of a deleted Actor"
    );
    assert_eq!(journal_entries(&env, "kept"), 3, "and its journal");
}
