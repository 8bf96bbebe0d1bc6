//! The node agent's pods are Pod objects in the API, as on a cluster: `kubectl get pods` lists
//! them truthfully, scale-down honours `controller.kubernetes.io/pod-deletion-cost`, and
//! `kubectl delete pod` stops a pod gracefully while its Deployment gets a replacement.

mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use common::{
    TestEnv, eventually,
    testpods::{WAIT, deployment, live_pods, wait_ready},
};
use serde_json::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The Pod objects in the test's namespace, by name.
fn pod_objects(env: &TestEnv) -> BTreeMap<String, Value> {
    env.kubectl_json(&["get", "pods"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (s(&p["metadata"]["name"]).to_string(), p.clone()))
        .collect()
}

fn condition<'a>(pod: &'a Value, type_: &str) -> &'a Value {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

/// Each live pod's name and container pid, from the node agent.
async fn pids(env: &TestEnv) -> BTreeMap<String, u64> {
    live_pods(env)
        .await
        .iter()
        .map(|p| {
            (
                s(&p["name"]).to_string(),
                p["containers"][0]["pid"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test]
async fn kubectl_get_pods_lists_a_deployments_pods_with_their_addresses_and_readiness() {
    let env = TestEnv::new("pods-listed").await;
    assert!(env.apply(&deployment("web", 2, &[])).0);
    wait_ready(&env, "web", 2).await;
    let running = live_pods(&env).await;
    assert_eq!(running.len(), 2);
    let wide = eventually("kubectl get pods -o wide to show both pods ready", WAIT, || {
        let out = env.kubectl_ok(&["get", "pods", "-o", "wide"]);
        let listed = |p: &Value| {
            out.lines().any(|l| {
                let cols: Vec<_> = l.split_whitespace().collect();
                cols.first() == Some(&s(&p["name"]))
                    && cols[1..4] == ["1/1", "Running", "0"]
                    && cols.contains(&s(&p["ip"]))
                    && cols.contains(&"troupe-local-node")
            })
        };
        std::future::ready((out.lines().count() == 3 && running.iter().all(listed)).then_some(out))
    })
    .await;
    let header: Vec<_> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    );

    // Each object is what a ReplicaSet controller and a kubelet would have made of the pod.
    let deployment_uid = env.kubectl_json(&["get", "deployment", "web"])["metadata"]["uid"].clone();
    let objects = pod_objects(&env);
    for p in &running {
        let o = &objects[s(&p["name"])];
        assert_eq!(o["metadata"]["uid"], p["uid"]);
        let owner = &o["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                s(&owner["kind"]),
                s(&owner["name"]),
                &owner["uid"],
                &owner["controller"]
            ),
            ("Deployment", "web", &deployment_uid, &Value::Bool(true))
        );
        assert_eq!(o["metadata"]["labels"]["app"], "web");
        assert_eq!(
            s(&o["metadata"]["labels"]["pod-template-hash"]),
            &s(&p["templateHash"])[..10]
        );
        assert_eq!(o["spec"]["nodeName"], "troupe-local-node");
        assert_eq!(o["status"]["podIP"], p["ip"]);
        assert_eq!(o["status"]["phase"], "Running");
        assert!(o["status"]["startTime"].is_string(), "{o}");
        assert_eq!(condition(o, "Ready")["status"], "True");
        assert_eq!(condition(o, "ContainersReady")["status"], "True");
        let c = &o["status"]["containerStatuses"][0];
        assert_eq!(
            (&c["ready"], &c["restartCount"]),
            (&Value::Bool(true), &Value::from(0))
        );
        assert!(c["state"]["running"]["startedAt"].is_string(), "{c}");
        // The uid the pod's container was given through the downward API is its object's.
        let seen: Value = reqwest::get(format!("http://{}:8080/env", s(&p["ip"])))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(seen["POD_UID"], o["metadata"]["uid"]);
    }
}

#[tokio::test]
async fn scale_down_removes_the_pod_with_the_lowest_deletion_cost_even_the_oldest() {
    let env = TestEnv::new("pods-deletion-cost").await;
    assert!(env.apply(&deployment("web", 1, &[])).0);
    wait_ready(&env, "web", 1).await;
    let oldest = s(&live_pods(&env).await[0]["name"]).to_string();
    // The ReplicaSet controller deletes pods ready for less time first, on a logarithmic scale:
    // ready 8 s before the others, the oldest goes last by default.
    tokio::time::sleep(Duration::from_secs(8)).await;
    env.kubectl_ok(&["scale", "deployment", "web", "--replicas", "4"]);
    wait_ready(&env, "web", 4).await;
    env.kubectl_ok(&["scale", "deployment", "web", "--replicas", "3"]);
    wait_ready(&env, "web", 3).await;
    let kept = pids(&env).await;
    assert!(
        kept.contains_key(&oldest),
        "by default a newer pod goes first; the oldest {oldest} went: {kept:?}"
    );

    // Annotated with the lowest cost, the oldest goes first after all.
    env.kubectl_ok(&[
        "annotate",
        "pod",
        &oldest,
        "controller.kubernetes.io/pod-deletion-cost=-100",
    ]);
    env.kubectl_ok(&["scale", "deployment", "web", "--replicas", "2"]);
    wait_ready(&env, "web", 2).await;
    let others: BTreeMap<_, _> = kept.into_iter().filter(|(name, _)| *name != oldest).collect();
    assert_eq!(pids(&env).await, others, "the two others keep running, untouched");
    eventually("the annotated pod's object to be gone", WAIT, || {
        let names: Vec<_> = pod_objects(&env).into_keys().collect();
        let expected: Vec<_> = others.keys().cloned().collect();
        std::future::ready((names == expected).then_some(()))
    })
    .await;
}

#[tokio::test]
async fn kubectl_delete_pod_stops_it_gracefully_and_the_deployment_replaces_it() {
    let env = TestEnv::new("pods-kubectl-delete").await;
    // A pod that ignores SIGTERM, with 5 s to go: it is killed when its grace period ends.
    let manifest = deployment("stubborn", 1, &[("IGNORE_SIGTERM", "1")]).replace(
        "terminationGracePeriodSeconds: 2",
        "terminationGracePeriodSeconds: 5",
    );
    assert!(env.apply(&manifest).0);
    wait_ready(&env, "stubborn", 1).await;
    let pod = live_pods(&env).await.remove(0);
    let (name, pid) = (
        s(&pod["name"]).to_string(),
        pod["containers"][0]["pid"].as_u64().unwrap(),
    );

    let asked = Instant::now();
    env.kubectl_ok(&["delete", "pod", &name, "--wait=false"]);
    let listed = env.kubectl_ok(&["get", "pods"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&name) && l.contains("Terminating")),
        "kubectl shows the pod Terminating during its grace period:\n{listed}"
    );
    let replacement = eventually("a replacement pod, ready", WAIT, || async {
        live_pods(&env)
            .await
            .into_iter()
            .find(|p| p["name"] != name.as_str() && p["ready"] == true)
    })
    .await;
    assert_ne!(replacement["uid"], pod["uid"]);
    eventually("the deleted pod's object to be gone", WAIT, || {
        let gone = !env.kubectl(&["get", "pod", &name]).status.success();
        std::future::ready(gone.then_some(()))
    })
    .await;
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_secs(4),
        "gone after {took:?}, before its 5 s grace period"
    );
    // SIGKILL came only after SIGTERM: the pod logged that it ignored it.
    let log = env.container_log(&name, "app");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("SIGTERM received and ignored"),
        "{}: {text}",
        log.display()
    );
    // SAFETY: signal 0 only checks whether the process exists.
    assert_ne!(
        unsafe { libc::kill(pid as i32, 0) },
        0,
        "the pod's process is gone"
    );
    let objects = pod_objects(&env);
    assert_eq!(objects.keys().collect::<Vec<_>>(), [s(&replacement["name"])]);
}
