//! Durable actors (issue 13), against the local control plane with real worker processes and a
//! real PostgreSQL: an actor's state goes with it on a planned move, survives a crash as its
//! persistence mode promises, waits out a store that stopped, and is never overwritten by a worker
//! that was frozen past its lease.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{
    TestEnv, eventually,
    store::{OwnStore, store_dsn, stored_row},
};
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

/// What each named counter answers now (retried while it cannot answer: moving, starting).
async fn counts_now<'a>(
    env: &TestEnv,
    ip: &str,
    names: impl IntoIterator<Item = &'a String>,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        let answer = eventually(&format!("{name} answers"), WAIT, || async {
            let r = send(env, ip, name, "ask", json!(0)).await;
            if r.status() == 200 {
                r.json::<Value>().await.ok()
            } else {
                None
            }
        })
        .await;
        let value = answer["value"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} answered {answer}"));
        counts.insert(name.clone(), value as usize);
    }
    counts
}

/// Every counter answers with the count it must have kept.
async fn counts_kept(
    env: &TestEnv,
    ip: &str,
    expected: &BTreeMap<String, usize>,
    moved: &[&String],
    when: &str,
) {
    let now = counts_now(env, ip, expected.keys()).await;
    for (name, count) in expected {
        let how = if moved.contains(&name) {
            "moved"
        } else {
            "not moved"
        };
        assert_eq!(now[name], *count, "{name} ({how}) keeps its count {when}");
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

/// Two workers hosting the counters (`persistence` under the pool's spec): counts them up
/// through one worker, `kill -9`s the other, and waits until the counters it hosted run again
/// under a newer epoch. Returns the counts each counter was told, the survivor's address and
/// the counters that lost their worker.
async fn crash_a_worker(env: &TestEnv, persistence: &str) -> (BTreeMap<String, usize>, String, Vec<String>) {
    assert!(env.apply(&manifests(2, persistence)).0);
    let before = running_on(env, 2).await;
    let pods = env.pods().await;
    let (victim, survivor) = (&pods[0], &pods[1]);
    let survivor_ip = survivor["ip"].as_str().unwrap().to_string();
    let expected = count_up(env, &survivor_ip).await;

    // The worker process dies at once: no handoff, no goodbye.
    let victim_name = victim["name"].as_str().unwrap().to_string();
    signal(victim, "-9");
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
        env,
        "the killed worker's counters Running again under a new epoch",
        |a| on_victim.iter().all(|n| a[n].2 > before[n].2),
    )
    .await;
    (expected, survivor_ip, on_victim)
}

/// Sends `sig` (`-9`, `-STOP`, `-CONT`) to a pod's worker process.
fn signal(pod: &Value, sig: &str) {
    let pid = pod["containers"][0]["pid"].as_i64().expect("the worker's pid");
    let sent = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {sig} {pid}");
}

#[tokio::test]
async fn with_every_message_counters_keep_their_exact_count_across_kill_9_of_their_worker() {
    let env = TestEnv::new("durable-crash").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    env.secret("state-store", &[("dsn", &store_dsn())]);
    let persistence = "  persistence: {mode: EveryMessage, storeSecretRef: {name: state-store}}\n";
    // Every tell answered 202 is committed before its answer.
    let (expected, survivor_ip, crashed) = crash_a_worker(&env, persistence).await;
    let moved: Vec<&String> = crashed.iter().collect();
    counts_kept(
        &env,
        &survivor_ip,
        &expected,
        &moved,
        "after kill -9 of their worker",
    )
    .await;
}

#[tokio::test]
async fn with_interval_counters_lose_fewer_changes_than_the_interval_across_kill_9_of_their_worker() {
    const EVERY: usize = 3;
    let env = TestEnv::new("durable-interval").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    env.secret("state-store", &[("dsn", &store_dsn())]);
    let persistence = format!(
        "  persistence: {{mode: Interval, checkpointEvery: {EVERY}, storeSecretRef: {{name: state-store}}}}\n"
    );
    // Counter c{i} is told i + 3 times: every one of them at least one full interval.
    let (expected, survivor_ip, crashed) = crash_a_worker(&env, &persistence).await;
    let now = counts_now(&env, &survivor_ip, expected.keys()).await;
    for (name, told) in &expected {
        let kept = now[name];
        if crashed.contains(name) {
            // Written every EVERY messages (the asks count too): what came after the last write
            // is lost, and nothing more.
            assert!(
                kept <= *told && told - kept < EVERY,
                "{name} was told {told} times and keeps {kept} after its worker's crash: it may lose fewer than {EVERY} (counts {now:?})"
            );
        } else {
            assert_eq!(kept, *told, "{name}, not on the crashed worker, keeps its count");
        }
    }
}

/// The Ready condition's reason on an actor's status ("" when none).
fn ready_reason(env: &TestEnv, name: &str) -> (String, String) {
    let a = env.kubectl_json(&["get", "actor", name]);
    let reason = a["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["reason"].as_str())
        .unwrap_or("")
        .to_string();
    (a["status"]["phase"].as_str().unwrap_or("").to_string(), reason)
}

#[tokio::test]
async fn when_the_store_stops_actors_refuse_messages_and_recover_by_themselves_once_it_is_back() {
    // A store of this test's own: stopping the shared one would fail the other tests.
    let store = OwnStore::start("store-down");
    let env = TestEnv::new("durable-store-down").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    env.secret("state-store", &[("dsn", &store.dsn())]);
    let persistence = "  persistence: {mode: EveryMessage, storeSecretRef: {name: state-store}}\n";
    assert!(env.apply(&manifests(1, persistence)).0);
    running_on(&env, 1).await;
    let ip = env.pods().await[0]["ip"].as_str().unwrap().to_string();
    let expected = count_up(&env, &ip).await;

    store.stop();
    // A tell whose change cannot be committed is not acknowledged: it waits for its commit
    // (10 s), then 504 — committed or not is unknown, as with any database timeout.
    let unknown = send(&env, &ip, "c0", "tell", json!(1)).await.status();
    assert_eq!(unknown, 504, "a tell while the store is down");
    eventually("c0 shows that it waits for the store", WAIT, || {
        let now = ready_reason(&env, "c0");
        std::future::ready((now.0 == "Starting" && now.1 == "StoreUnavailable").then_some(()))
    })
    .await;
    // Now it refuses at once rather than accept and lose.
    assert_eq!(send(&env, &ip, "c0", "tell", json!(1)).await.status(), 503);
    // An actor created while the store is down cannot read its state: it waits too.
    assert!(
        env.apply("apiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {name: late}\nspec: {pool: counters, behavior: counter}\n")
            .0
    );
    eventually("the new actor waits for the store", WAIT, || {
        let now = ready_reason(&env, "late");
        std::future::ready((now.0 == "Starting" && now.1 == "StoreUnavailable").then_some(()))
    })
    .await;

    store.resume();
    eventually("c0 and the new actor Running again by themselves", WAIT, || {
        let ok = ["c0", "late"]
            .iter()
            .all(|n| ready_reason(&env, n).0 == "Running");
        std::future::ready(ok.then_some(()))
    })
    .await;
    let names: Vec<String> = expected.keys().cloned().collect();
    let now = counts_now(&env, &ip, &names).await;
    let c0 = now["c0"];
    assert!(
        c0 == expected["c0"] || c0 == expected["c0"] + 1,
        "c0 keeps its {} acknowledged tells, plus at most the one answered 504 (it has {c0})",
        expected["c0"]
    );
    for (name, told) in expected.iter().filter(|(n, _)| *n != "c0") {
        assert_eq!(
            now[name], *told,
            "{name} keeps its count across the store's restart"
        );
    }
    // Writes go through again, to the restarted store.
    assert_eq!(send(&env, &ip, "c0", "tell", json!(1)).await.status(), 202);
    assert_eq!(send(&env, &ip, "late", "tell", json!(2)).await.status(), 202);
    let (_, state) = stored_row(&store.dsn(), &env.namespace, "c0").expect("c0's row");
    assert_eq!(state, json!({"value": c0 + 1}), "c0's committed state");
    let (_, state) = stored_row(&store.dsn(), &env.namespace, "late").expect("late's row");
    assert_eq!(state, json!({"value": 2}), "the late actor's committed state");
}

/// A worker's `troupe_worker_state_writes_total` by outcome (None while it does not answer).
async fn state_writes(ip: &str) -> Option<BTreeMap<String, u64>> {
    let text = reqwest::get(format!("http://{ip}:8080/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.strip_prefix("troupe_worker_state_writes_total{outcome=\""))
            .filter_map(|l| {
                let (outcome, rest) = l.split_once("\"}")?;
                Some((outcome.to_string(), rest.trim().parse().ok()?))
            })
            .collect(),
    )
}

/// Resumes a stopped worker process when dropped, so that a failing test leaves none frozen.
struct Thaw(Value);

impl Drop for Thaw {
    fn drop(&mut self) {
        if let Some(pid) = self.0["containers"][0]["pid"].as_i64() {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
    }
}

#[tokio::test]
async fn a_worker_paused_past_its_lease_in_the_middle_of_a_message_cannot_overwrite_the_state() {
    let env = TestEnv::new("durable-paused").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    env.secret("state-store", &[("dsn", &store_dsn())]);
    let dsn = store_dsn();
    // One slow counter: each message takes 3 s, time enough to freeze its worker inside one.
    let manifest = "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {name: counters}\nspec:\n  replicas: 2\n  persistence: {mode: EveryMessage, storeSecretRef: {name: state-store}}\n  template:\n    spec:\n      containers: [{name: worker, image: troupe/worker:0.1.0}]\n---\napiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {name: slow}\nspec: {pool: counters, behavior: counter, config: {latencyMs: 3000}}\n";
    assert!(env.apply(manifest).0);
    let first = eventually("slow Running, and both workers up", WAIT, || async {
        let a = actors(&env);
        let pods = env.pods().await;
        let up = pods.iter().filter(|p| p["ip"].as_str().is_some()).count() == 2;
        a.get("slow")
            .filter(|(phase, ..)| phase == "Running" && up)
            .map(|(_, worker, epoch, _)| (worker.clone(), *epoch))
    })
    .await;
    let (worker_a, epoch_a) = first;
    let pods = env.pods().await;
    let pod_a = pods
        .iter()
        .find(|p| p["name"] == worker_a.as_str())
        .unwrap()
        .clone();
    let pod_b = pods
        .iter()
        .find(|p| p["name"] != worker_a.as_str())
        .unwrap()
        .clone();
    let (ip_a, ip_b) = (
        pod_a["ip"].as_str().unwrap().to_string(),
        pod_b["ip"].as_str().unwrap().to_string(),
    );
    for _ in 0..2 {
        assert_eq!(send(&env, &ip_b, "slow", "tell", json!(1)).await.status(), 202);
    }
    assert_eq!(
        stored_row(&dsn, &env.namespace, "slow"),
        Some((epoch_a, json!({"value": 2})))
    );

    // A tell to worker A; one second into its three, A's process is frozen.
    let url = format!(
        "http://{ip_a}:8080/v1/namespaces/{}/actors/slow/tell",
        env.namespace
    );
    let in_flight = tokio::spawn(async move {
        let r = reqwest::Client::new()
            .post(url)
            .bearer_auth(TOKEN)
            .json(&json!({"add": 100}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    signal(&pod_a, "-STOP");
    let thaw = Thaw(pod_a.clone());

    // A's lease runs out: the actor moves to B under a newer epoch and goes on there.
    let epoch_b = eventually("slow Running on worker B under a newer epoch", WAIT, || {
        let a = actors(&env);
        std::future::ready(
            a.get("slow")
                .filter(|(phase, worker, epoch, _)| {
                    phase == "Running" && *worker != worker_a && *epoch > epoch_a
                })
                .map(|(.., epoch, _)| *epoch),
        )
    })
    .await;
    assert_eq!(send(&env, &ip_b, "slow", "tell", json!(5)).await.status(), 202);
    assert_eq!(
        stored_row(&dsn, &env.namespace, "slow"),
        Some((epoch_b, json!({"value": 7}))),
        "B restored A's last committed state and wrote its own"
    );

    // A wakes up inside its message: it finishes it and tries to write 102 under its old epoch.
    drop(thaw);
    let (status, body) = in_flight.await.unwrap();
    // Not acknowledged: refused by the store (500), or its wait for the commit, which ran out
    // while A was frozen, answers first (504).
    assert!(
        status == 500 && body.contains("newer activation") || status == 504,
        "the frozen worker's tell is not acknowledged: {status} {body}"
    );
    // A tried to write once more after its two tells: wait for that attempt, whatever came of it.
    let writes = eventually("worker A's write after it woke up", WAIT, || async {
        let writes = state_writes(&ip_a).await?;
        (writes.values().sum::<u64>() >= 3).then_some(writes)
    })
    .await;
    assert_eq!(
        stored_row(&dsn, &env.namespace, "slow"),
        Some((epoch_b, json!({"value": 7}))),
        "the frozen worker's write did not land (A's writes: {writes:?})"
    );
    assert_eq!(
        writes.get("stale"),
        Some(&1),
        "worker A counts its write refused by epoch: {writes:?}"
    );
    // B still runs the actor, with its state.
    assert_eq!(
        send(&env, &ip_b, "slow", "ask", json!(0))
            .await
            .json::<Value>()
            .await
            .unwrap(),
        json!({"value": 7})
    );
    let now = &actors(&env)["slow"];
    assert_eq!(
        (now.0.as_str(), now.2),
        ("Running", epoch_b),
        "the Actor's status still says B runs it"
    );
}
