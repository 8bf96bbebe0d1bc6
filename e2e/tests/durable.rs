//! Durable actors (issue 13), against the local control plane with real worker processes: an
//! actor's state goes with it on a planned move.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{TestEnv, eventually};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "durable-e2e-token";
const ACTORS: usize = 8;

fn manifests() -> String {
    let mut out = String::from(
        "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {name: counters}\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers: [{name: worker, image: troupe/worker:0.1.0}]\n",
    );
    for i in 0..ACTORS {
        out.push_str(&format!(
            "---\napiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {{name: c{i}}}\nspec: {{pool: counters, behavior: counter}}\n"
        ));
    }
    out
}

/// name → (phase, worker, epoch) of every actor.
fn actors(env: &TestEnv) -> BTreeMap<String, (String, String, i64)> {
    env.kubectl_json(&["get", "actors"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            (
                s(&a["metadata"]["name"]),
                (
                    s(&a["status"]["phase"]),
                    s(&a["status"]["worker"]),
                    a["status"]["epoch"].as_i64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

async fn running_on(env: &TestEnv, workers: usize) -> BTreeMap<String, (String, String, i64)> {
    eventually(
        &format!("{ACTORS} counters Running on {workers} workers"),
        WAIT,
        || {
            let a = actors(env);
            let used: std::collections::BTreeSet<_> = a.values().map(|(_, w, _)| w.clone()).collect();
            let ok = a.len() == ACTORS && used.len() == workers && a.values().all(|(p, _, _)| p == "Running");
            std::future::ready(ok.then_some(a))
        },
    )
    .await
}

/// Sends `verb` with `body` to actor `name` through the worker at `ip` (which forwards it).
async fn send(env: &TestEnv, ip: &str, name: &str, verb: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!(
            "http://{ip}:8080/v1/namespaces/{}/actors/{name}/{verb}",
            env.namespace
        ))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn counters_moved_by_a_rebalance_keep_their_exact_count() {
    let env = TestEnv::new("durable-move").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    assert!(env.apply(&manifests()).0);
    let before = running_on(&env, 1).await;
    let pods = env.pods().await;
    let ip = pods[0]["ip"].as_str().unwrap().to_string();

    // Counter c{i} is told 1, i + 3 times: each answered 202, so each must be counted once.
    let mut expected = BTreeMap::new();
    for i in 0..ACTORS {
        let name = format!("c{i}");
        for _ in 0..i + 3 {
            assert_eq!(send(&env, &ip, &name, "tell", json!(1)).await.status(), 202);
        }
        let now = send(&env, &ip, &name, "ask", json!(0))
            .await
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(now, json!({"value": i + 3}), "{name} before the move");
        expected.insert(name, i + 3);
    }

    env.kubectl_ok(&["scale", "actorpool", "counters", "--replicas", "3"]);
    let after = running_on(&env, 3).await;
    let moved: Vec<&String> = after
        .iter()
        .filter(|(n, (_, w, epoch))| before[*n].1 != *w && *epoch > before[*n].2)
        .map(|(n, _)| n)
        .collect();
    assert!(
        moved.len() >= 2,
        "a rebalance over 3 workers moves some counters: {after:?}"
    );

    for (name, count) in &expected {
        let answer = eventually(&format!("{name} answers"), WAIT, || async {
            let r = send(&env, &ip, name, "ask", json!(0)).await;
            if r.status() == 200 {
                r.json::<Value>().await.ok()
            } else {
                None
            }
        })
        .await;
        assert_eq!(
            answer,
            json!({"value": count}),
            "{name} ({}) keeps its count",
            if moved.contains(&name) {
                "moved"
            } else {
                "not moved"
            }
        );
    }
}
