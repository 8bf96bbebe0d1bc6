//! Scale-in without killing work: the workers a scale-down stops leave first — the operator
//! moves their actors to the workers that stay, each handing its state over between two
//! messages — so counters told all along keep their exact count (the pool's mode is OnMove: an
//! actor that failed over instead would start again from zero).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use serde_json::{Value, json};

use super::*;
use crate::common::TestEnv;

/// (object name, reason) of every Event in the namespace.
fn events(env: &TestEnv) -> Vec<(String, String)> {
    env.kubectl_json(&["get", "events"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            (s(&e["involvedObject"]["name"]), s(&e["reason"]))
        })
        .collect()
}

#[tokio::test]
async fn counters_told_while_the_pool_scales_in_keep_their_exact_count_and_no_tell_is_refused() {
    let env = TestEnv::new("durable-scale-in").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    let slow = manifests(3, "").replace("behavior: counter}", "behavior: counter, config: {latencyMs: 5}}");
    assert!(env.apply(&slow).0);
    let before = running_balanced(&env, 3).await;
    // The local Deployment controller keeps the pod whose name sorts last: the senders go
    // through it, so that no request is cut by the end of the process it went to.
    let mut pods = env.pods().await;
    pods.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let staying = pods.last().unwrap()["name"].as_str().unwrap().to_string();
    let ip = pods.last().unwrap()["ip"].as_str().unwrap().to_string();
    let leaving: Vec<String> = pods[..2]
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let on_leaving = before.values().filter(|(_, w, ..)| leaving.contains(w)).count();

    // Two senders per counter, one tell at a time each, from before the scale-in to after it.
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..ACTORS * 2)
        .map(|i| {
            let i = i % ACTORS;
            let (stop, ip, ns) = (stop.clone(), ip.clone(), env.namespace.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let url = format!("http://{ip}:8080/v1/namespaces/{ns}/actors/c{i}/tell");
                let (mut accepted, mut refused) = (0usize, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    let r = http
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .json(&json!(1))
                        .send()
                        .await
                        .unwrap();
                    match r.status().as_u16() {
                        202 => accepted += 1,
                        code => refused.push(format!("{code} {}", r.text().await.unwrap_or_default())),
                    }
                }
                (format!("c{i}"), accepted, refused)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.kubectl_ok(&["scale", "actorpool", "counters", "--replicas", "1"]);
    let after = running(&env, "every counter Running on the worker that stays", |a| {
        a.values().all(|(_, w, ..)| *w == staying)
    })
    .await;
    // The leaving workers are gone: their processes ended (after their leave, not at its
    // timeout: see the pool's Events below).
    eventually("the leaving workers' pods are gone", WAIT, || async {
        let names: Vec<String> = env
            .pods()
            .await
            .iter()
            .map(|p| p["name"].as_str().unwrap_or("").to_string())
            .collect();
        (!names.iter().any(|n| leaving.contains(n))).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let mut expected = BTreeMap::new();
    let mut refused = Vec::new();
    for s in senders {
        let (name, accepted, no) = s.await.unwrap();
        refused.extend(no.into_iter().map(|r| format!("{name}: {r}")));
        *expected.entry(name).or_default() += accepted;
    }
    let moved = moved_between(&before, &after);
    assert_eq!(
        moved.len(),
        on_leaving,
        "every counter of the leaving workers moved, and only those: {before:?} → {after:?}"
    );
    eprintln!(
        "told while {} of {ACTORS} counters moved off 2 leaving workers: {} tells accepted, {} refused",
        moved.len(),
        expected.values().sum::<usize>(),
        refused.len()
    );
    assert!(
        refused.is_empty(),
        "no tell refused during the scale-in: {refused:?}"
    );
    // Exactly: none lost (handled before the state was handed over, or waited for the next
    // worker), none handled twice, none restarted from zero (a failover would have).
    counts_kept(&env, &ip, &expected, &moved, "after the scale-in").await;
    let leaves: Vec<_> = events(&env)
        .into_iter()
        .filter(|(_, reason)| reason == "WorkerLeaving")
        .collect();
    assert!(
        !leaves.is_empty(),
        "the pool says its workers were leaving: {:?}",
        events(&env)
    );
}
