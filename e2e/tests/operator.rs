//! The operator, against the local control plane with real worker processes: pools become
//! Deployments, every actor runs on exactly one live worker, failover, scaling, restarts, and
//! honest status for bad input.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{TestEnv, eventually};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "operator-e2e-token";

fn pool(name: &str, replicas: i32, extra: &str) -> String {
    format!(
        "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      terminationGracePeriodSeconds: 10\n      containers: [{{name: worker, image: troupe/worker:0.1.0}}]\n{extra}"
    )
}

fn actors(pool: &str, names: impl IntoIterator<Item = String>, behavior: &str) -> String {
    names
        .into_iter()
        .map(|n| format!("apiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {{name: {n}}}\nspec: {{pool: {pool}, behavior: {behavior}}}\n---\n"))
        .collect()
}

fn setup_token(env: &TestEnv) {
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
}

/// name → (phase, worker, label) of every actor.
fn placement(env: &TestEnv) -> BTreeMap<String, (String, String, String)> {
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
                    s(&a["metadata"]["labels"]["troupe.dev/worker"]),
                ),
            )
        })
        .collect()
}

/// Workers whose lease has not expired (a killed worker's lease stays behind, expired).
fn live_workers(env: &TestEnv) -> Vec<String> {
    let now = chrono::Utc::now();
    env.kubectl_json(&["get", "leases"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            let renewed = l["spec"]["renewTime"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            let secs = l["spec"]["leaseDurationSeconds"].as_i64().unwrap_or(0);
            renewed.is_some_and(|r| r.with_timezone(&chrono::Utc) + chrono::Duration::seconds(secs) > now)
        })
        .map(|l| l["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until every actor is Running on a live worker, its label and status agree, the workers
/// number `workers` and hold actors within one of each other; returns the placement.
async fn all_running(env: &TestEnv, actors: usize, workers: usize) -> BTreeMap<String, String> {
    eventually(
        &format!("{actors} actors Running on {workers} live workers"),
        WAIT,
        || {
            let p = placement(env);
            let live = live_workers(env);
            let mut per_worker: BTreeMap<&str, usize> = live.iter().map(|w| (w.as_str(), 0)).collect();
            for (_, w, _) in p.values() {
                *per_worker.entry(w.as_str()).or_default() += 1;
            }
            let (max, min) = (per_worker.values().max(), per_worker.values().min());
            let balanced = max.zip(min).is_some_and(|(max, min)| max - min <= 1);
            let ok = p.len() == actors
                && live.len() == workers
                && balanced
                && p.values()
                    .all(|(phase, w, label)| phase == "Running" && w == label && live.contains(w));
            std::future::ready(ok.then(|| p.into_iter().map(|(a, (_, w, _))| (a, w)).collect()))
        },
    )
    .await
}

fn loads(p: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for w in p.values() {
        *m.entry(w.clone()).or_default() += 1;
    }
    m
}

fn moved(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> usize {
    a.iter().filter(|(k, w)| b.get(*k) != Some(*w)).count()
}

#[tokio::test]
async fn a_pool_becomes_an_owned_deployment_and_every_actor_runs_on_one_live_worker() {
    let env = TestEnv::new("op-basics").await;
    setup_token(&env);
    assert!(env.apply(&pool("p", 2, "")).0);
    assert!(
        env.apply(&actors("p", (0..6).map(|i| format!("a{i}")), "counter"))
            .0
    );
    let p = all_running(&env, 6, 2).await;
    let l = loads(&p);
    assert!(
        l.values().max().unwrap() - l.values().min().unwrap() <= 1,
        "balanced: {l:?}"
    );

    let deploys = env.kubectl_json(&["get", "deployments"]);
    let d = &deploys["items"][0];
    assert_eq!(d["metadata"]["ownerReferences"][0]["kind"], "ActorPool");
    assert_eq!(d["metadata"]["labels"]["troupe.dev/pool"], "p");
    assert_eq!(d["spec"]["template"]["spec"]["serviceAccountName"], "p-worker");
    // The account exists (core/v1, served by the local control plane's core API), owned by the pool.
    let sa = env.kubectl_json(&["get", "serviceaccount", "p-worker"]);
    assert_eq!(sa["metadata"]["ownerReferences"][0]["kind"], "ActorPool");
    // The workers' account is bound to the worker role, in this namespace only, owned by the pool.
    let rb = env.kubectl_json(&["get", "rolebinding", "p-worker"]);
    assert_eq!(rb["roleRef"]["name"], "troupe-worker");
    assert_eq!(rb["subjects"][0]["name"], "p-worker");
    assert_eq!(rb["subjects"][0]["namespace"], env.namespace.as_str());
    assert_eq!(rb["metadata"]["ownerReferences"][0]["kind"], "ActorPool");

    let pool_status = env.kubectl_json(&["get", "actorpool", "p"])["status"].clone();
    assert_eq!(pool_status["phase"], "Healthy");
    assert_eq!(pool_status["readyWorkers"], 2);
    assert_eq!(pool_status["actors"]["total"], 6);
    let table = env.kubectl_ok(&["get", "actors"]);
    assert!(table.lines().skip(1).all(|l| l.contains("Running")), "{table}");

    // The actor answers through any worker's API.
    let worker = &p["a0"];
    let pods = env.pods().await;
    let ip = pods.iter().find(|x| x["name"] == worker.as_str()).unwrap()["ip"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{ip}:8080/v1/namespaces/{}/actors/a0/ask",
            env.namespace
        ))
        .bearer_auth(TOKEN)
        .json(&5)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        serde_json::json!({"value": 5})
    );
}

#[tokio::test]
async fn scaling_moves_few_actors_and_keeps_them_balanced() {
    let env = TestEnv::new("op-scaling").await;
    setup_token(&env);
    assert!(env.apply(&pool("p", 2, "")).0);
    assert!(
        env.apply(&actors("p", (0..12).map(|i| format!("a{i:02}")), "echo"))
            .0
    );
    let two = all_running(&env, 12, 2).await;
    env.kubectl_ok(&["scale", "actorpool", "p", "--replicas", "3"]);
    let three = all_running(&env, 12, 3).await;
    let l = loads(&three);
    assert!(l.values().all(|n| *n == 4), "balanced over 3 workers: {l:?}");
    assert_eq!(moved(&two, &three), 4, "only the new worker's share moves");

    env.kubectl_ok(&["scale", "actorpool", "p", "--replicas", "2"]);
    let back = all_running(&env, 12, 2).await;
    let l = loads(&back);
    assert!(l.values().all(|n| *n == 6), "{l:?}");
    assert!(
        moved(&three, &back) <= 6,
        "at most the removed worker's actors and a rebalance move"
    );
}

#[tokio::test]
async fn when_a_worker_dies_its_actors_run_elsewhere_after_its_lease_ends() {
    let env = TestEnv::new("op-failover").await;
    setup_token(&env);
    assert!(env.apply(&pool("p", 2, "")).0);
    assert!(
        env.apply(&actors("p", (0..4).map(|i| format!("a{i}")), "counter"))
            .0
    );
    let before = all_running(&env, 4, 2).await;
    let victim = before["a0"].clone();
    assert_eq!(
        env.node_delete(&format!("/pods/{}/{victim}?grace=0", env.namespace))
            .await,
        202
    );
    eventually("the killed worker's lease to expire", WAIT, || {
        std::future::ready((!live_workers(&env).contains(&victim)).then_some(()))
    })
    .await;
    let after = all_running(&env, 4, 2).await;
    assert!(after.values().all(|w| *w != victim), "{after:?}");
    let kept: Vec<_> = before.iter().filter(|(_, w)| **w != victim).collect();
    // The replacement pod can come up before the dead worker's lease expires; the placement
    // then sees three live workers and may move one actor of the survivor onto it. No more.
    let survivor_moves = kept.iter().filter(|(a, w)| after[*a] != **w).count();
    assert!(
        survivor_moves <= 1,
        "actors of the surviving worker stay put (moved {survivor_moves} of {}): {before:?} -> {after:?}",
        kept.len()
    );
    let events = env.kubectl_ok(&["get", "events"]);
    assert!(events.contains("FailedOver"), "{events}");
}

#[tokio::test]
async fn restarting_the_operator_changes_no_placement_and_restarts_no_actor() {
    let env = TestEnv::new("op-restart").await;
    setup_token(&env);
    assert!(env.apply(&pool("p", 2, "")).0);
    assert!(env.apply(&actors("p", (0..6).map(|i| format!("a{i}")), "echo")).0);
    let before = all_running(&env, 6, 2).await;
    let status = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.sh"))
        .arg("restart-operator")
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = all_running(&env, 6, 2).await;
    assert_eq!(before, after);
    let items = env.kubectl_json(&["get", "actors"]);
    for a in items["items"].as_array().unwrap() {
        assert_eq!(a["status"]["restarts"], 0, "{}", a["metadata"]["name"]);
    }
}

#[tokio::test]
async fn pausing_and_deleting_actors_take_effect_and_bad_input_gets_a_reason() {
    let env = TestEnv::new("op-inputs").await;
    setup_token(&env);
    assert!(env.apply(&pool("p", 1, "")).0);
    assert!(
        env.apply(&actors("p", ["good".to_string(), "gone".to_string()], "echo"))
            .0
    );
    assert!(env.apply(&actors("p", ["weird".to_string()], "teleporter")).0);
    assert!(env.apply(&actors("nope", ["lost".to_string()], "echo")).0);
    // A config nested 300 levels deep: the API server takes it (it allows 10,000), and serde_json
    // refuses over 128 levels. It must fail this actor alone, not every list and watch of Actors
    // in the operator, the workers and the plugin.
    let deep = format!("{}1{}", r#"{"a":"#.repeat(300), "}".repeat(300));
    let deep_actor = format!(
        r#"{{"apiVersion":"troupe.dev/v1alpha1","kind":"Actor","metadata":{{"name":"deep"}},"spec":{{"pool":"p","behavior":"echo","config":{deep}}}}}"#
    );
    let (applied, out) = env.apply(&deep_actor);
    assert!(applied, "{out}");
    eventually("good Running, weird and deep Failed, lost Pending", WAIT, || {
        let p = placement(&env);
        let phase = |n: &str| p.get(n).map(|x| x.0.clone()).unwrap_or_default();
        std::future::ready(
            (phase("good") == "Running"
                && phase("weird") == "Failed"
                && phase("deep") == "Failed"
                && phase("lost") == "Pending")
                .then_some(()),
        )
    })
    .await;
    let deep = env.kubectl_json(&["get", "actor", "deep"])["status"].clone();
    assert!(
        deep["lastError"].as_str().unwrap().contains("300 levels deep"),
        "{deep}"
    );
    let status = env.kubectl_troupe(&["status", "p"]);
    assert!(
        status.status.success(),
        "the plugin reads the namespace despite the deep config: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let lost = env.kubectl_json(&["get", "actor", "lost"])["status"].clone();
    let placed = lost["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Placed")
        .unwrap()
        .clone();
    assert_eq!(
        (placed["status"].as_str(), placed["reason"].as_str()),
        (Some("False"), Some("PoolNotFound"))
    );
    let weird = env.kubectl_json(&["get", "actor", "weird"])["status"].clone();
    assert!(weird["lastError"].as_str().unwrap().contains("teleporter"));
    let events = env.kubectl_ok(&["get", "events"]);
    assert!(events.contains("PoolNotFound"), "{events}");

    env.kubectl_ok(&[
        "patch",
        "actor",
        "good",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":true}}"#,
    ]);
    eventually("good Paused", WAIT, || {
        std::future::ready((placement(&env)["good"].0 == "Paused").then_some(()))
    })
    .await;
    env.kubectl_ok(&[
        "patch",
        "actor",
        "good",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":false}}"#,
    ]);
    eventually("good Running again", WAIT, || {
        std::future::ready((placement(&env)["good"].0 == "Running").then_some(()))
    })
    .await;

    env.kubectl_ok(&["delete", "actor", "gone"]);
    let pods = env.pods().await;
    let ip = pods[0]["ip"].as_str().unwrap().to_string();
    eventually("the deleted actor to be stopped on its worker", WAIT, || async {
        let r = reqwest::Client::new()
            .post(format!(
                "http://{ip}:8080/v1/namespaces/{}/actors/gone/ask",
                env.namespace
            ))
            .bearer_auth(TOKEN)
            .json(&1)
            .send()
            .await
            .unwrap();
        (r.status().as_u16() == 404).then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_a_pool_leaves_its_actors_pending_with_a_reason() {
    let env = TestEnv::new("op-pool-deleted").await;
    setup_token(&env);
    assert!(env.apply(&pool("p", 1, "")).0);
    assert!(env.apply(&actors("p", ["a".to_string()], "echo")).0);
    all_running(&env, 1, 1).await;
    env.kubectl_ok(&["delete", "actorpool", "p"]);
    eventually(
        "the actor Pending with PoolNotFound and its worker gone",
        WAIT,
        || async {
            let a = env.kubectl_json(&["get", "actor", "a"]);
            let reason_ok = a["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Placed" && c["reason"] == "PoolNotFound")
            });
            let ok = a["status"]["phase"] == "Pending" && reason_ok && env.pods().await.is_empty();
            ok.then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_second_operator_replica_waits_for_leadership_and_writes_nothing() {
    let env = TestEnv::new("op-leader").await;
    setup_token(&env);
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
    let log = std::env::temp_dir().join(format!("{}-second-operator.log", env.namespace));
    // Configured as the main replica is, so that a takeover (which this test must not see)
    // would still run working workers; killed whatever happens to the test.
    let admin =
        std::path::PathBuf::from(std::env::var("TROUPE_CLUSTER_DIR").unwrap()).join("admin.kubeconfig");
    let second = std::process::Command::new(format!("{target}/debug/troupe-operator"))
        .env("KUBECONFIG", &admin)
        .env("POD_NAME", "second-replica")
        .args(["--listen", "127.0.0.1:0"])
        .arg("--worker-env")
        .arg(format!("KUBECONFIG={}", admin.display()))
        .args([
            "--worker-env",
            "TROUPE_LEASE_DURATION=6s",
            "--worker-env",
            "TROUPE_LEASE_RENEW=1s",
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _second = KillOnDrop(second);
    let lease_holder = || {
        let out = std::process::Command::new("kubectl")
            .env("KUBECONFIG", std::env::var("TROUPE_KUBECONFIG").unwrap())
            .args([
                "get",
                "lease",
                "troupe-operator",
                "-n",
                "troupe-system",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    eventually("the second replica to wait for leadership", WAIT, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        std::future::ready(text.contains("waiting for leadership").then_some(()))
    })
    .await;
    assert_eq!(lease_holder(), "troupe-operator-local");
    // The leader still places actors while the follower runs.
    assert!(env.apply(&pool("p", 1, "")).0);
    assert!(env.apply(&actors("p", ["a".to_string()], "echo")).0);
    all_running(&env, 1, 1).await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("leading"), "the follower took over: {text}");
    // A follower told to stop (a rollout of the operator's Deployment) handles SIGTERM and exits
    // cleanly: without a handler it dies of the signal here, and as PID 1 of a container it
    // would ignore it and be killed at the end of its grace period. The leader keeps the Lease.
    let mut second = _second;
    let pid = second.0.id() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let exited = eventually("the follower to exit on SIGTERM", WAIT, || {
        std::future::ready(second.0.try_wait().unwrap())
    })
    .await;
    assert!(exited.success(), "{exited:?}");
    assert_eq!(lease_holder(), "troupe-operator-local");
}
