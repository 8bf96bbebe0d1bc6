//! Durable actors under faults: a worker killed (`kill -9`) with persistence modes EveryMessage
//! and Interval, the store stopped and started, and a worker frozen past its lease in the middle
//! of a message.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::common::{
    TestEnv, eventually,
    store::{OwnStore, store_dsn, stored_row},
};

/// Two workers hosting the counters (`persistence` under the pool's spec): counts them up
/// through one worker, `kill -9`s the other, and waits until the counters it hosted run again
/// under a newer epoch. Returns the counts each counter was told, the survivor's address and
/// the counters that lost their worker.
pub(super) async fn crash_a_worker(
    env: &TestEnv,
    persistence: &str,
) -> (BTreeMap<String, usize>, String, Vec<String>) {
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
        let now = ready(&env, "c0");
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
        let now = ready(&env, "late");
        std::future::ready((now.0 == "Starting" && now.1 == "StoreUnavailable").then_some(()))
    })
    .await;

    store.resume();
    eventually("c0 and the new actor Running again by themselves", WAIT, || {
        let ok = ["c0", "late"].iter().all(|n| ready(&env, n).0 == "Running");
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
