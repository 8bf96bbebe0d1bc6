//! Durable actors (issue 13), against the local control plane with real worker processes: an
//! actor's state goes with it on a planned move.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{TestEnv, eventually, store_dsn};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "durable-e2e-token";
const ACTORS: usize = 8;

/// The pool `counters` (`replicas` workers, `extra` YAML lines under `spec:`) and its counters.
fn manifests(replicas: usize, extra: &str) -> String {
    let mut out = format!(
        "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {{name: counters}}\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers: [{{name: worker, image: troupe/worker:0.1.0, env: [{{name: GENERATION, value: \"1\"}}]}}]\n{extra}",
    );
    for i in 0..ACTORS {
        out.push_str(&format!(
            "---\napiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {{name: c{i}}}\nspec: {{pool: counters, behavior: counter}}\n"
        ));
    }
    out
}

/// name → (phase, worker, epoch, revision) of every actor.
fn actors(env: &TestEnv) -> BTreeMap<String, (String, String, i64, String)> {
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
                    s(&a["status"]["revision"]),
                ),
            )
        })
        .collect()
}

type Placement = BTreeMap<String, (String, String, i64, String)>;

/// Waits until every counter is Running and `placed` says the placement is the awaited one.
async fn running(env: &TestEnv, what: &str, placed: impl Fn(&Placement) -> bool) -> Placement {
    eventually(what, WAIT, || {
        let a = actors(env);
        let ok = a.len() == ACTORS && a.values().all(|(p, ..)| p == "Running") && placed(&a);
        std::future::ready(ok.then_some(a))
    })
    .await
}

async fn running_on(env: &TestEnv, workers: usize) -> Placement {
    running(
        env,
        &format!("{ACTORS} counters Running on {workers} workers"),
        |a| {
            a.values()
                .map(|(_, w, ..)| w)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                == workers
        },
    )
    .await
}

/// Tells counter c{i} `1`, i + 3 times (each answered 202), through the worker at `ip`; returns
/// the count each must keep.
async fn count_up(env: &TestEnv, ip: &str) -> BTreeMap<String, usize> {
    let mut expected = BTreeMap::new();
    for i in 0..ACTORS {
        let name = format!("c{i}");
        for _ in 0..i + 3 {
            assert_eq!(send(env, ip, &name, "tell", json!(1)).await.status(), 202);
        }
        let now = send(env, ip, &name, "ask", json!(0))
            .await
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(now, json!({"value": i + 3}), "{name} before any move");
        expected.insert(name, i + 3);
    }
    expected
}

/// Every counter answers with the count it must have kept.
async fn counts_kept(
    env: &TestEnv,
    ip: &str,
    expected: &BTreeMap<String, usize>,
    moved: &[&String],
    when: &str,
) {
    for (name, count) in expected {
        let answer = eventually(&format!("{name} answers"), WAIT, || async {
            let r = send(env, ip, name, "ask", json!(0)).await;
            if r.status() == 200 {
                r.json::<Value>().await.ok()
            } else {
                None
            }
        })
        .await;
        let how = if moved.contains(&name) {
            "moved"
        } else {
            "not moved"
        };
        assert_eq!(
            answer,
            json!({"value": count}),
            "{name} ({how}) keeps its count {when}"
        );
    }
}

fn moved_between<'a>(before: &Placement, after: &'a Placement) -> Vec<&'a String> {
    after
        .iter()
        .filter(|(n, (_, w, epoch, _))| before[*n].1 != *w && *epoch > before[*n].2)
        .map(|(n, _)| n)
        .collect()
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
    assert!(env.apply(&manifests(1, "")).0);
    let before = running_on(&env, 1).await;
    let pods = env.pods().await;
    let ip = pods[0]["ip"].as_str().unwrap().to_string();
    let expected = count_up(&env, &ip).await;

    env.kubectl_ok(&["scale", "actorpool", "counters", "--replicas", "3"]);
    let after = running_on(&env, 3).await;
    let moved = moved_between(&before, &after);
    assert!(
        moved.len() >= 2,
        "a rebalance over 3 workers moves some counters: {after:?}"
    );
    counts_kept(&env, &ip, &expected, &moved, "after the rebalance").await;
}

#[tokio::test]
async fn counters_keep_their_exact_count_through_a_canary_step_and_its_rollback() {
    let env = TestEnv::new("durable-canary").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    let strategy = "  strategy:\n    canary:\n      scaleDownDelay: 5s\n      steps: [{setWeight: 50}, {pause: {}}, {setWeight: 100}]\n";
    assert!(env.apply(&manifests(2, strategy)).0);
    let stable = running_on(&env, 2).await;
    let old = stable.values().next().unwrap().3.clone();
    let pods = env.pods().await;
    let ip = pods[0]["ip"].as_str().unwrap().to_string();
    let expected = count_up(&env, &ip).await;

    // A new revision: half the counters move to its canary workers.
    env.kubectl_ok(&[
        "patch",
        "actorpool",
        "counters",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/0/env/0/value","value":"2"}]"#,
    ]);
    let canary = running(&env, "half the counters Running on the canary", |a| {
        a.values().filter(|(.., r)| *r != old).count() == ACTORS / 2
    })
    .await;
    let moved = moved_between(&stable, &canary);
    counts_kept(&env, &ip, &expected, &moved, "on the canary step").await;

    // Rolled back by hand: every counter goes back to the stable revision.
    env.kubectl_ok(&["annotate", "actorpool", "counters", "troupe.dev/abort=now"]);
    let back = running(&env, "every counter back on the stable revision", |a| {
        a.values().all(|(.., r)| *r == old)
    })
    .await;
    let moved_back = moved_between(&canary, &back);
    assert!(!moved_back.is_empty(), "the rollback moved counters: {back:?}");
    counts_kept(&env, &ip, &expected, &moved_back, "after the rollback").await;
}

#[tokio::test]
async fn with_every_message_counters_keep_their_exact_count_across_kill_9_of_their_worker() {
    let env = TestEnv::new("durable-crash").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    env.secret("state-store", &[("dsn", &store_dsn())]);
    let persistence = "  persistence: {mode: EveryMessage, storeSecretRef: {name: state-store}}\n";
    assert!(env.apply(&manifests(2, persistence)).0);
    let before = running_on(&env, 2).await;
    let pods = env.pods().await;
    let (victim, survivor) = (&pods[0], &pods[1]);
    let survivor_ip = survivor["ip"].as_str().unwrap().to_string();
    // Every tell answered 202 is committed before its answer.
    let expected = count_up(&env, &survivor_ip).await;

    // The worker process dies at once: no handoff, no goodbye.
    let victim_name = victim["name"].as_str().unwrap().to_string();
    let pid = victim["containers"][0]["pid"].as_i64().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let on_victim: Vec<String> = before
        .iter()
        .filter(|(_, (_, w, ..))| *w == victim_name)
        .map(|(n, _)| n.clone())
        .collect();
    assert!(
        !on_victim.is_empty(),
        "the killed worker hosted counters: {before:?}"
    );
    // Its counters run again under a newer epoch (failed over, or on the restarted worker).
    running(
        &env,
        "the killed worker's counters Running again under a new epoch",
        |a| on_victim.iter().all(|n| a[n].2 > before[n].2),
    )
    .await;
    let moved: Vec<&String> = on_victim.iter().collect();
    counts_kept(
        &env,
        &survivor_ip,
        &expected,
        &moved,
        "after kill -9 of their worker",
    )
    .await;
}
