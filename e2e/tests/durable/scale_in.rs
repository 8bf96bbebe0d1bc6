//! Scale-in without killing work: the workers a scale-down stops leave first — the operator
//! moves their actors to the workers that stay, each handing its state over between two
//! messages — so counters told all along keep their exact count (the pool's mode is OnMove: an
//! actor that failed over instead would start again from zero).

use super::*;
use crate::common::TestEnv;

#[tokio::test]
async fn counters_told_while_the_pool_scales_in_keep_their_exact_count_and_no_tell_is_refused() {
    let env = TestEnv::new("durable-scale-in").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    // The leave is on by default (TROUPE_LEAVE_TIMEOUT=15s): the pool does not set it.
    let slow = manifests(3, "").replace("behavior: counter}", "behavior: counter, config: {latencyMs: 5}}");
    assert!(env.apply(&slow).0);
    let before = running_balanced(&env, 3).await;
    // Whichever pods the Deployment controller stops, senders go on through one that is up.
    let pods = env.pods().await;
    let ips: Vec<String> = pods
        .iter()
        .map(|p| p["ip"].as_str().unwrap().to_string())
        .collect();
    // Two senders per counter, one tell at a time each, from before the scale-in to after it.
    let senders = Senders::start(&env, &ips, 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.kubectl_ok(&["scale", "actorpool", "counters", "--replicas", "1"]);
    let after = running_on(&env, 1).await;
    let staying = after.values().next().unwrap().1.clone();
    let leaving: Vec<String> = pods
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .filter(|n| *n != staying)
        .collect();
    let ip = pods
        .iter()
        .find(|p| p["name"] == staying.as_str())
        .and_then(|p| p["ip"].as_str())
        .unwrap()
        .to_string();
    let on_leaving = before.values().filter(|(_, w, ..)| leaving.contains(w)).count();
    // The scale-down removed the emptiest workers: the operator marked each pod with its actor
    // count as deletion cost (3, 3 and 2 here), and the one that stays is one of the busiest.
    let per_worker = |w: &str| before.values().filter(|(_, on, ..)| on == w).count();
    let busiest = pods
        .iter()
        .map(|p| per_worker(p["name"].as_str().unwrap()))
        .max()
        .unwrap();
    assert_eq!(
        per_worker(&staying),
        busiest,
        "the worker that stays had the most actors: {before:?}"
    );
    let cost = env.kubectl_json(&["get", "pod", &staying])["metadata"]["annotations"]
        ["controller.kubernetes.io/pod-deletion-cost"]
        .clone();
    assert_eq!(
        cost,
        json!(busiest.to_string()),
        "its pod says its actor count as deletion cost"
    );
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
    let (expected, refused) = senders.stop().await;
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
    let leaves: Vec<_> = env
        .events()
        .into_iter()
        .filter(|(_, reason)| reason == "WorkerLeaving")
        .collect();
    assert!(
        !leaves.is_empty(),
        "the pool says its workers were leaving: {:?}",
        env.events()
    );
}
