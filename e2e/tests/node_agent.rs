//! The node agent runs Deployments as local processes and keeps their status true.

mod common;

use std::time::Duration;

use common::{
    TestEnv, eventually,
    testpods::{WAIT, deployment, int, live_pods, status, wait_ready},
};
use serde_json::Value;

#[tokio::test]
async fn pods_run_as_processes_with_their_own_address_and_downward_api_env() {
    let env = TestEnv::new("node-runs-pods").await;
    assert!(env.apply(&deployment("web", 2, &[])).0);
    let s = wait_ready(&env, "web", 2).await;
    assert_eq!(s["observedGeneration"], 1);
    let conditions = s["conditions"].as_array().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Available" && c["status"] == "True")
    );

    let pods = live_pods(&env).await;
    assert_eq!(pods.len(), 2);
    assert_ne!(pods[0]["ip"], pods[1]["ip"], "each pod has its own address");
    for pod in pods {
        let ip = pod["ip"].as_str().unwrap();
        let seen: Value = reqwest::get(format!("http://{ip}:8080/env"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(seen["POD_NAME"], pod["name"]);
        assert_eq!(seen["POD_NAMESPACE"], env.namespace.as_str());
        assert_eq!(seen["POD_IP"], ip);
        assert_eq!(seen["TEST_MARK"], "base");
    }
    assert!(
        env.kubectl_ok(&["get", "deployments"])
            .contains("2         2       2            2"),
        "kubectl get deployments shows the replica counts"
    );
}

#[tokio::test]
async fn scaling_up_and_down_changes_the_pods_and_the_status() {
    let env = TestEnv::new("node-scales").await;
    assert!(env.apply(&deployment("web", 1, &[])).0);
    wait_ready(&env, "web", 1).await;
    env.kubectl_ok(&["scale", "deployment", "web", "--replicas", "3"]);
    wait_ready(&env, "web", 3).await;
    assert_eq!(live_pods(&env).await.len(), 3);
    env.kubectl_ok(&["scale", "deployment", "web", "--replicas", "1"]);
    wait_ready(&env, "web", 1).await;
    eventually("scaled-down pods to be gone", WAIT, || async {
        (env.pods().await.len() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_template_change_replaces_every_pod_without_dropping_below_the_ready_count() {
    let env = TestEnv::new("node-replaces").await;
    assert!(env.apply(&deployment("web", 2, &[])).0);
    wait_ready(&env, "web", 2).await;
    let old: Vec<String> = live_pods(&env)
        .await
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert!(env.apply(&deployment("web", 2, &[("TEST_VERSION", "2")])).0);
    let mut min_ready = i64::MAX;
    let s = eventually("every pod replaced by one of the new template", WAIT, || {
        let s = status(&env, "web");
        min_ready = min_ready.min(int(&s, "readyReplicas"));
        let done = s["observedGeneration"] == 2
            && int(&s, "updatedReplicas") == 2
            && int(&s, "replicas") == 2
            && int(&s, "availableReplicas") == 2;
        std::future::ready(done.then_some(s))
    })
    .await;
    assert!(
        min_ready >= 2,
        "ready replicas dropped to {min_ready} during the replacement"
    );
    let reason = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()["reason"]
        .clone();
    assert_eq!(reason, "NewReplicaSetAvailable");
    eventually("the old pods to be gone", WAIT, || async {
        let pods = env.pods().await;
        (pods.len() == 2
            && pods
                .iter()
                .all(|p| !old.contains(&p["name"].as_str().unwrap().to_string())))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_crashed_container_is_restarted_in_place_with_backoff() {
    let env = TestEnv::new("node-restarts").await;
    assert!(
        env.apply(&deployment("crashy", 1, &[("EXIT_AFTER_MS", "1500")]))
            .0
    );
    let pod = eventually("the container to have restarted twice", WAIT, || async {
        let pods = env.pods().await;
        pods.into_iter()
            .find(|p| p["containers"][0]["restartCount"].as_u64().unwrap_or(0) >= 2)
    })
    .await;
    assert_eq!(pod["containers"][0]["lastTermination"], "exited with code 3");
    assert_eq!(
        env.pods().await.len(),
        1,
        "a restart keeps the pod; it does not make a new one"
    );
}

#[tokio::test]
async fn killing_a_pod_restarts_its_containers_and_deleting_it_brings_a_new_pod() {
    let env = TestEnv::new("node-kill-delete").await;
    assert!(env.apply(&deployment("web", 1, &[])).0);
    wait_ready(&env, "web", 1).await;
    let pod = live_pods(&env).await.remove(0);
    let name = pod["name"].as_str().unwrap().to_string();
    let first_pid = pod["containers"][0]["pid"].as_u64().unwrap();

    assert_eq!(
        env.node_post(&format!("/pods/{}/{name}/kill", env.namespace))
            .await,
        202
    );
    eventually(
        "the killed container to be running again with a new pid",
        WAIT,
        || async {
            let p = env
                .pods()
                .await
                .into_iter()
                .find(|p| p["name"] == name.as_str())?;
            let c = &p["containers"][0];
            (c["restartCount"] == 1 && c["ready"] == true && c["pid"].as_u64() != Some(first_pid))
                .then_some(())
        },
    )
    .await;

    assert_eq!(
        env.node_delete(&format!("/pods/{}/{name}?grace=0", env.namespace))
            .await,
        202
    );
    eventually("a replacement pod with a new name, ready", WAIT, || async {
        let pods = live_pods(&env).await;
        (pods.len() == 1 && pods[0]["name"] != name.as_str() && pods[0]["ready"] == true).then_some(())
    })
    .await;
    assert_eq!(
        env.node_delete(&format!("/pods/{}/no-such-pod", env.namespace))
            .await,
        404
    );
}

#[tokio::test]
async fn failing_readiness_and_liveness_probes_show_in_status_and_restart_the_container() {
    let env = TestEnv::new("node-probes").await;
    assert!(env.apply(&deployment("web", 1, &[])).0);
    wait_ready(&env, "web", 1).await;
    let pod = live_pods(&env).await.remove(0);
    let name = pod["name"].as_str().unwrap().to_string();
    let dir = env.container_dir(&name, "app");

    std::fs::write(dir.join("unready"), "").unwrap();
    eventually("the deployment to report 0 ready replicas", WAIT, || {
        let s = status(&env, "web");
        std::future::ready((int(&s, "readyReplicas") == 0 && int(&s, "availableReplicas") == 0).then_some(()))
    })
    .await;
    let s = status(&env, "web");
    let available = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .unwrap()
        .clone();
    assert_eq!(available["status"], "False");
    std::fs::remove_file(dir.join("unready")).unwrap();
    wait_ready(&env, "web", 1).await;

    std::fs::write(dir.join("unhealthy"), "").unwrap();
    let p = eventually("the liveness failure to restart the container", WAIT, || async {
        env.pods()
            .await
            .into_iter()
            .find(|p| p["containers"][0]["restartCount"].as_u64().unwrap_or(0) >= 1)
    })
    .await;
    std::fs::remove_file(dir.join("unhealthy")).unwrap();
    assert!(
        p["containers"][0]["lastTermination"]
            .as_str()
            .unwrap()
            .contains("liveness probe failed"),
        "{p}"
    );
}

#[tokio::test]
async fn a_container_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let env = TestEnv::new("node-grace").await;
    assert!(
        env.apply(&deployment("stubborn", 1, &[("IGNORE_SIGTERM", "1")]))
            .0
    );
    wait_ready(&env, "stubborn", 1).await;
    let pid = live_pods(&env).await[0]["containers"][0]["pid"].as_u64().unwrap() as i32;
    let started = std::time::Instant::now();
    env.kubectl_ok(&["scale", "deployment", "stubborn", "--replicas", "0"]);
    eventually("the process to be gone", WAIT, || {
        // SAFETY: signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0;
        std::future::ready(gone.then_some(()))
    })
    .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "killed after {took:?}, before the 2 s grace period"
    );
}

#[tokio::test]
async fn an_image_without_a_local_binary_is_reported_not_run() {
    let env = TestEnv::new("node-bad-image").await;
    let manifest = deployment("nginx", 1, &[]).replace("troupe/testpod:1", "nginx:1.27");
    assert!(env.apply(&manifest).0);
    let pod = eventually("the pod to report why it cannot run", WAIT, || async {
        env.pods()
            .await
            .into_iter()
            .find(|p| p["containers"][0]["waitingReason"].is_string())
    })
    .await;
    let reason = pod["containers"][0]["waitingReason"].as_str().unwrap();
    assert!(
        reason.contains("CrashLoopBackOff") || reason.contains("ErrImagePull"),
        "{reason}"
    );
    let s = status(&env, "nginx");
    assert_eq!(int(&s, "readyReplicas"), 0);
}

#[tokio::test]
async fn objects_whose_owner_is_deleted_are_garbage_collected_with_their_pods() {
    let env = TestEnv::new("node-gc").await;
    let pool = "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {name: owner}\nspec:\n  template:\n    spec:\n      containers: [{name: worker, image: troupe/worker:0.1.0}]\n";
    assert!(env.apply(pool).0);
    let uid = env.kubectl_json(&["get", "actorpool", "owner"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let owned = deployment("owned", 1, &[]).replace(
        "metadata: {name: owned}",
        &format!("metadata:\n  name: owned\n  ownerReferences: [{{apiVersion: troupe.dev/v1alpha1, kind: ActorPool, name: owner, uid: {uid}, controller: true}}]"),
    );
    assert!(env.apply(&owned).0, "owned deployment");
    // A Deployment whose owner never existed with that uid goes too; one without owners stays.
    let stale = deployment("stale", 0, &[]).replace(
        "metadata: {name: stale}",
        "metadata:\n  name: stale\n  ownerReferences: [{apiVersion: troupe.dev/v1alpha1, kind: ActorPool, name: owner, uid: not-the-owner}]",
    );
    assert!(env.apply(&stale).0);
    assert!(env.apply(&deployment("free", 0, &[])).0);
    wait_ready(&env, "owned", 1).await;
    eventually(
        "the deployment with a stale owner uid to be collected",
        WAIT,
        || {
            let out = env.kubectl(&["get", "deployment", "stale"]);
            std::future::ready((!out.status.success()).then_some(()))
        },
    )
    .await;

    env.kubectl_ok(&["delete", "actorpool", "owner"]);
    eventually("the owned deployment and its pod to be gone", WAIT, || async {
        let gone = !env.kubectl(&["get", "deployment", "owned"]).status.success();
        (gone && env.pods().await.is_empty()).then_some(())
    })
    .await;
    assert!(
        env.kubectl(&["get", "deployment", "free"]).status.success(),
        "objects without owners stay"
    );
}
